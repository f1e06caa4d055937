// Live parts without a reload: every [data-live] element fetches its URL (the same template
// part the server rendered into it) every data-every milliseconds and replaces only the
// [data-slot] elements whose HTML changed. A new picture is swapped in once it has loaded, so
// thumbnails never flicker. Plain fetch: no library, no build step.
(() => {
  const slotsOf = (root) => new Map([...root.querySelectorAll("[data-slot]")].map((el) => [el.dataset.slot, el]));

  function showImage(current, fresh) {
    const loader = new Image();
    loader.onload = () => {
      if (current.tagName === "IMG") current.src = fresh.src;
      else if (current.isConnected) current.replaceWith(fresh);
    };
    loader.src = fresh.src;
  }

  function patch(region, html) {
    const fresh = document.createElement("template");
    fresh.innerHTML = html;
    // Every render masks the CSRF token anew; any mask is valid, so keep the page's own and
    // let a form's HTML differ only when the form does.
    const token = document.querySelector("input[name=csrfmiddlewaretoken]");
    for (const input of fresh.content.querySelectorAll("input[name=csrfmiddlewaretoken]")) {
      input.setAttribute("value", token ? token.value : input.value);
    }
    const before = slotsOf(region), after = slotsOf(fresh.content);
    if (before.size !== after.size || [...after.keys()].some((key) => !before.has(key))) {
      region.replaceChildren(fresh.content);  // rows came or went: take the new part whole
      return;
    }
    for (const [key, next] of after) {
      const current = before.get(key);
      if (current.outerHTML === next.outerHTML) continue;
      if (next.tagName === "IMG") showImage(current, next);
      else current.replaceWith(next);
    }
  }

  function schedule(region, delay) {
    clearTimeout(region.liveTimer);
    region.liveTimer = setTimeout(() => poll(region), delay);
  }

  async function poll(region) {
    try {
      const response = await fetch(region.dataset.live, {cache: "no-store"});
      if (response.redirected) {  // the session ended: reloading leads to the login page
        location.reload();
        return;
      }
      const html = await response.text();
      if (response.ok && html !== region.liveHtml) {
        region.liveHtml = html;
        patch(region, html);
      }
    } catch (error) {
      // the server is away for a moment: try again at the next tick
    }
    schedule(region, Number(region.dataset.every || 1000));
  }

  for (const region of document.querySelectorAll("[data-live]")) {
    region.addEventListener("refresh", () => schedule(region, 0));
    schedule(region, Number(region.dataset.every || 1000));
  }
})();
