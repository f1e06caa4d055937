"""The operator pages: login, permissions and CSRF through Django's client, then an operator's
session in a real headless Chromium (Debian's, driven by Playwright) against a live server, a
real worker and FFmpeg: start a channel, watch it turn RUNNING with its picture, stop it."""
import re
import subprocess
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.contrib.auth.models import Permission, User
from django.db import connection, connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from channels_app.models import Channel
from channels_app.schedules import replace_schedule
from resources_app.models import EncodeHost
from retrovue.pages import chart
from streams_app.hls import hls_dir
from streams_app.models import Stream

from .conftest import wait_status
from .factories import make_channel

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
PAGES = ["/channels", "/channels/live", "/channels/1", "/channels/1/live", "/channels/1/thumbnail.jpg",
         "/streams", "/streams/table", "/streams/charts", "/streams/log", "/resources", "/resources/live"]
LATENCY_MS = 2_000  # a change in the database shows on an open page within this
BUTTONS = ["/channels/1/start", "/channels/1/stop", "/channels/1/restart", "/channels/start-all",
           "/channels/stop-all", "/resources/hosts/enc-1/drain", "/resources/hosts/enc-1/undrain",
           "/resources/allocate", "/resources/release"]


def failed_channel():
    """A channel that wants to run but failed, with a run that logged an error: every button and
    every part of every page has something to show."""
    channel = make_channel(1, port=5001)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.ERROR, desired_state=Channel.Desired.RUNNING,
                                                 status_reason="ffmpeg exited with 1")
    Stream.objects.create(channel=channel, host="enc-1", generation=channel.generation, status=Stream.Status.ERROR,
                          error_log=[{"at": timezone.now().isoformat(), "line": "[error] Connection refused"}])
    EncodeHost.objects.create(name="enc-1", last_heartbeat=timezone.now())
    return channel


def read_only_staff():
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=["view_channel", "view_encodehost"]))
    return user


@pytest.mark.django_db
def test_every_page_and_button_requires_login(client):
    failed_channel()
    for url in PAGES:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"] == f"/admin/login/?next={url}", url
    for url in BUTTONS:
        assert client.post(url).status_code == 302, url
    assert Channel.objects.get().status == Channel.Status.ERROR


@pytest.mark.django_db
def test_operator_sees_every_page_with_its_buttons(admin_client):
    failed_channel()
    for url in PAGES:
        expected = 404 if url.endswith(".jpg") else 200  # no picture: the channel does not run
        assert admin_client.get(url).status_code == expected, url
    channels = admin_client.get("/channels").content.decode()
    assert 'action="/channels/1/start"' in channels and 'action="/channels/1/stop"' in channels
    assert 'action="/channels/start-all"' in channels
    assert "ffmpeg exited with 1" in channels
    assert 'action="/resources/hosts/enc-1/drain"' in admin_client.get("/resources").content.decode()
    streams = admin_client.get("/streams").content.decode()
    assert "FAILED" in streams and "Connection refused" in streams
    assert "Connection refused" not in admin_client.get("/streams/log?q=timeout").content.decode()
    assert "Connection refused" in admin_client.get("/streams/log?q=REFUSED").content.decode()


@pytest.mark.django_db
def test_read_only_staff_see_no_buttons_and_get_403(client):
    failed_channel()
    client.force_login(read_only_staff())
    for url in ("/channels", "/channels/1", "/resources"):
        page = client.get(url).content.decode()
        assert "(read-only)" in page
        assert not re.search(r'<form method="post" action="/(channels|resources)/', page), url
    for url in BUTTONS:
        assert client.post(url).status_code == 403, url
    assert Channel.objects.get().desired_state == Channel.Desired.RUNNING
    assert EncodeHost.objects.get().state == EncodeHost.State.ONLINE


@pytest.mark.django_db
def test_buttons_are_refused_without_the_csrf_token(admin_user):
    failed_channel()
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    assert client.post("/channels/1/stop", {"next": "/channels/1"}).status_code == 403
    assert Channel.objects.get().desired_state == Channel.Desired.RUNNING
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get("/channels/1").content.decode())
    response = client.post("/channels/1/stop", {"next": "/channels/1", "csrfmiddlewaretoken": token.group(1)})
    assert response.status_code == 302 and response["Location"] == "/channels/1"
    assert Channel.objects.get().status == Channel.Status.STOPPED
    assert "stop requested, now STOPPED" in client.get("/channels/1").content.decode()
    refused = client.post("/resources/hosts/nowhere/drain", {"csrfmiddlewaretoken": token.group(1),
                                                              "next": "https://elsewhere.example/"})
    assert refused["Location"] == "/channels"  # never back to another site
    assert "no encode host &#x27;nowhere&#x27;" in client.get("/channels").content.decode()


@pytest.mark.django_db
def test_bulk_and_host_buttons_call_the_services(admin_client):
    failed_channel()
    response = admin_client.post("/channels/stop-all", follow=True)
    assert "stop all: 1: STOPPED." in response.content.decode()
    assert Channel.objects.get().desired_state == Channel.Desired.STOPPED
    admin_client.post("/resources/hosts/enc-1/drain", {"migrate": "on", "next": "/resources"})
    assert EncodeHost.objects.filter(state=EncodeHost.State.DRAINING, migrate=True).exists()
    page = admin_client.get("/resources").content.decode()
    assert "its channels move to other hosts" in page and 'action="/resources/hosts/enc-1/undrain"' in page
    admin_client.post("/resources/hosts/enc-1/undrain")
    assert EncodeHost.objects.get().state == EncodeHost.State.ONLINE


@pytest.mark.django_db
def test_the_admin_and_the_pages_link_both_ways(admin_client):
    assert admin_client.get("/").headers["Location"] == "/channels"
    assert 'href="/channels"' in admin_client.get("/admin/").content.decode()
    assert 'href="/admin/"' in admin_client.get("/channels").content.decode()


@pytest.mark.django_db
def test_channel_page_shows_its_schedule_and_outputs(admin_client, media):
    channel = make_channel(2, port=5002)
    start = timezone.now() + timedelta(hours=20)
    replace_schedule(channel, {"timezone": "Asia/Kolkata", "programs": [
        {"asset": str(media["bars"]), "title": "Evening News", "start": start}]})
    page = admin_client.get("/channels/2").content.decode()
    assert "1 program, time zone Asia/Kolkata" in page
    local = start.astimezone(ZoneInfo("Asia/Kolkata"))  # times show in the schedule's zone
    assert f'Evening News <span class="muted small">{local:%H:%M}–' in page
    assert 'src="/hls/2/index.m3u8"' in page and "udp://127.0.0.1:5002" in page
    assert f'href="/admin/channels_app/channel/{channel.pk}/change/"' in page


@pytest.mark.django_db
def test_thumbnail_is_cut_from_the_newest_finished_segment(admin_client, media):
    channel = make_channel(1, port=5001)
    folder = hls_dir(channel.number)
    folder.mkdir(parents=True)
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(media["clip"]), "-t", "1", "-c", "copy",
                    "-f", "mpegts", str(folder / "index7.ts")], check=True)
    (folder / "index.m3u8").write_text("#EXTM3U\n#EXTINF:2.0,\nindex7.ts\n")
    assert admin_client.get("/channels/1/thumbnail.jpg").status_code == 404  # stopped: no live picture
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.RUNNING)
    response = admin_client.get("/channels/1/thumbnail.jpg")
    assert response.status_code == 200 and response["Content-Type"] == "image/jpeg"
    assert b"".join(response.streaming_content).startswith(b"\xff\xd8")


def test_chart_starts_with_its_samples_averages_them_and_breaks_at_gaps(settings):
    settings.RETROVUE_METRICS_SAMPLE_SECONDS = 1
    until = timezone.now()
    since = until - timedelta(minutes=10)
    start = until - timedelta(seconds=60)
    points = ((0, 20), (0.5, 30), (30, 50), (31, 40), (59, 50))  # seconds after start, fps
    samples = [{"at": start + timedelta(seconds=at), "fps": fps} for at, fps in points]
    drawing = chart(samples, "fps", since, until, width=59, height=12, points=60)
    assert drawing["start"] == start and drawing["last"] == 50 and drawing["peak"] == 50
    # 25 (the average of the first second), a gap, 50 and 40 joined, a gap, 50.
    assert drawing["path"].split() == ["M0.0,6.0", "M30.0,1.0", "L31.0,3.0", "M59.0,1.0"]
    clipped = chart(samples, "fps", since, until, width=59, height=12, points=60, ceiling=25)
    assert clipped["peak"] == 50 and clipped["path"].split()[:2] == ["M0.0,1.0", "M30.0,1.0"]


@pytest.fixture
def browser(monkeypatch):
    """A fresh session in headless Debian Chromium (scripts/install-system-deps installs it;
    nothing is downloaded)."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Chromium is missing: run scripts/install-system-deps (apt-get install chromium)"
    # Playwright's sync API keeps an event loop in this thread; the test's ORM calls stay synchronous.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        # The pages' own scripts carry the CSP nonce (test_security_defaults); the policy is
        # bypassed only for Playwright's waits, which it evaluates as strings.
        yield chromium.new_context(viewport={"width": 1440, "height": 900}, bypass_csp=True)
        # After every sync call Playwright marks its loop as running in this thread, so the
        # test's ORM calls see an "async" thread: Django keeps their connection apart from the
        # thread's usual one, in a context variable of this greenlet. It becomes unreachable
        # (and stays open, blocking the test database's DROP) once the loop stops: close it now,
        # while the loop still runs.
        connections.close_all()
        chromium.close()


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


@pytest.mark.django_db(transaction=True)
def test_operator_runs_a_channel_from_the_browser(live_host, live_server, browser, media, free_port):
    from playwright.sync_api import expect

    User.objects.create_superuser("operator", password="pw")
    make_channel(1, port=free_port, name="RetroVue Classics", quality="copy", playlist=[str(media["clip"])])
    news = make_channel(2, port=free_port, name="Newsroom")
    replace_schedule(news, {"programs": [
        {"asset": str(media["bars"]), "title": "Evening News", "start": timezone.now() + timedelta(hours=1)}]})
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    page.goto(f"{live_server.url}/channels")
    page.fill("#id_username", "operator")
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.locator("#channel-1 button.start").click()
    expect(page.locator(".messages")).to_contain_text("start requested")
    page.evaluate("window.sameDocument = true")  # gone if anything reloads the page

    wait_status(1, "RUNNING")
    expect(page.locator("[data-slot=status-1] .badge")).to_have_text("RUNNING", timeout=LATENCY_MS)
    page.wait_for_function("document.querySelector('img[data-slot=thumb-1]')?.naturalWidth === 320",
                           timeout=15_000)
    expect(page.locator("[data-slot=host-1]")).to_contain_text(live_host.host)
    expect(page.locator("[data-slot=airs-2]")).to_contain_text("next Evening News")
    assert page.evaluate("window.sameDocument"), "the page reloaded"
    screenshot(page, "channels")

    page.goto(f"{live_server.url}/channels/1")
    page.wait_for_function("document.getElementById('preview').currentTime > 0.5", timeout=15_000)
    screenshot(page, "channel")

    page.goto(f"{live_server.url}/streams")
    expect(page.locator("[data-slot=stream-1] .badge.healthy")).to_be_visible(timeout=10_000)
    expect(page.locator("[data-slot=charts-1] path").first).to_be_attached(timeout=10_000)
    screenshot(page, "streams")

    resources = browser.new_page()  # a second tab of the same session
    resources.goto(f"{live_server.url}/resources")
    host = resources.locator(f"[data-slot=host-{live_host.host}]")
    expect(host.locator("a[href='/channels/1']")).to_be_visible()
    expect(host).to_contain_text("4.5 reserved")  # the copy profile's bandwidth reservation
    screenshot(resources, "resources")

    page.goto(f"{live_server.url}/channels")
    page.locator("#channel-1 button.stop").click()
    wait_status(1, "STOPPED")
    expect(page.locator("[data-slot=status-1] .badge")).to_have_text("STOPPED", timeout=LATENCY_MS)
    expect(page.locator("div[data-slot=thumb-1]")).to_have_text("no picture")
    # The other tab follows without a reload: the reservation went with the run.
    expect(host.locator("a[href='/channels/1']")).to_have_count(0, timeout=LATENCY_MS)
    expect(host).to_contain_text("0 reserved")
    assert not errors, errors


@pytest.mark.django_db
def test_channel_rows_poll_costs_the_same_queries_for_more_channels(admin_client):
    """/channels/live is polled every second by every open page: the sparklines' samples are
    read once for all channels (a scheduled channel still reads its own programs)."""
    for number in (1, 2):
        make_channel(number)
    few = cost(admin_client, "/channels/live")
    for number in range(3, 13):
        make_channel(number)
    assert cost(admin_client, "/channels/live") == few


@pytest.mark.django_db
@pytest.mark.parametrize("part", ["/streams/charts", "/streams/table"])
def test_stream_monitor_polls_cost_the_same_queries_for_more_streams(admin_client, part):
    def running(numbers):
        for number in numbers:
            channel = make_channel(number)
            Stream.objects.create(channel=channel, host="enc-1", generation=channel.generation,
                                  status="RUNNING", health_metrics={"fps": 25.0})

    running((1, 2))
    few = cost(admin_client, part)
    running(range(3, 13))
    assert cost(admin_client, part) == few


def cost(client, url):
    """Queries one GET of `url` takes."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)
