"""Shared plumbing of the operator pages (/channels, /streams, /resources).

Every page is a server-rendered template whose changing parts are also served on their own, so
the page polls them (templates/dashboards/live.js) instead of reloading. Buttons are POST forms:
login, then the change permission (403 without it), then one service call, then back to the page
with the outcome as a message (post-redirect-get).
"""
from datetime import timedelta
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from retrovue.errors import ConfigError, ServiceError

CHANGE_CHANNELS = "channels_app.change_channel"
CHANGE_HOSTS = "resources_app.change_encodehost"
HOME = "/channels"


def back_to(request):
    """Where the button was (its form's `next`), if that is a page of this site."""
    target = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return HOME


def operator_action(permission):
    """Turn `action(request, ...) -> message` into a POST-only button handler; a refusal from
    the service layer (no capacity, bad state) is shown as an error, not raised."""
    def decorate(action):
        @login_required
        @permission_required(permission, raise_exception=True)
        @require_POST
        @wraps(action)
        def view(request, *args, **kwargs):
            try:
                messages.success(request, action(request, *args, **kwargs))
            except (ServiceError, ConfigError) as exc:
                messages.error(request, str(exc))
            return redirect(back_to(request))
        return view
    return decorate


def duration(seconds):
    """1:02:03 for an uptime; None stays None (the template shows a dash)."""
    return None if seconds is None else str(timedelta(seconds=round(seconds)))


def chart(samples, field, since, until, width=120, height=28, points=60, ceiling=None):
    """An inline-SVG line of `field` over [since, until], starting where the samples start:
    averaged into at most `points` buckets, broken where sampling stopped for longer than three
    sample periods, scaled from 0 to the peak (so steady reads as flat) or to `ceiling`, above
    which values are drawn at the top (FFmpeg's first speed report can be 20000x)."""
    values = [(sample["at"], sample[field]) for sample in samples
              if sample.get(field) is not None and since <= sample["at"] <= until]
    drawing = {"width": width, "height": height, "path": "", "peak": None, "last": None,
               "start": values[0][0] if values else None}
    if not values:
        return drawing
    span = max((until - drawing["start"]).total_seconds(), 1.0)
    buckets = {}
    for at, value in values:
        index = min(points - 1, int((at - drawing["start"]).total_seconds() / span * points))
        buckets.setdefault(index, []).append(value)
    averages = [(index, sum(group) / len(group)) for index, group in sorted(buckets.items())]
    peak = max(value for _, value in averages)
    top = min(peak, ceiling or peak) or 1
    gap = 3 * settings.RETROVUE_METRICS_SAMPLE_SECONDS / (span / points)  # in buckets
    path, previous = [], None
    for index, value in averages:
        x, y = index * width / (points - 1), height - 1 - min(value, top) / top * (height - 2)
        joined = previous is not None and index - previous - 1 <= gap
        path.append(f"{'L' if joined else 'M'}{x:.1f},{y:.1f}")
        previous = index
    drawing.update(path=" ".join(path), peak=peak, last=averages[-1][1], dot_x=f"{x:.1f}", dot_y=f"{y:.1f}")
    return drawing
