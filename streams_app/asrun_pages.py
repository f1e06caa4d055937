"""/asrun: the as-run log of one channel or all, over a window, with its CSV export (the API's)."""
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from channels_app.models import Channel
from retrovue.errors import ConfigError

from .asrun import as_run_rows, find_as_run

FILTERS = ("channel", "from", "to")


@login_required
def as_run_page(request):
    chosen = {name: request.GET[name].strip() for name in FILTERS if request.GET.get(name, "").strip()}
    try:
        rows, errors = as_run_rows(find_as_run(chosen.get("channel"), since=chosen.get("from"),
                                               until=chosen.get("to"))), {}
    except ConfigError as exc:
        rows, errors = [], exc.errors
    context = {"rows": rows, "errors": errors, "chosen": chosen, "section": "asrun",
               "channels": Channel.objects.order_by("number").only("number", "name"),
               "csv_url": "/api/asrun?" + urlencode({**chosen, "format": "csv"})}
    return render(request, "dashboards/asrun.html", context, status=400 if errors else 200)
