"""Routes and the queue of deliveries: the service layer the API, the admin, the CLI and the
alert signal share."""
from django.conf import settings
from django.utils import timezone

from retrovue.errors import ConfigError, Conflict, NotFound
from streams_app.alerts import CLEARED, RAISED

from .models import ENVIRONMENT_PREFIX, Notification, NotificationRoute
from .serializers import RouteSerializer

LIST_LIMIT = 100
MAX_ID = 2**63 - 1


# --- routes ------------------------------------------------------------------------------------
def sync_environment_routes():
    """RETROVUE_ALERT_WEBHOOKS as routes with no filter: a new URL gets its route, a URL no
    longer listed has its route disabled (its delivery history stays). One query when in step."""
    urls = settings.RETROVUE_ALERT_WEBHOOKS
    known = {route.target: route for route in NotificationRoute.objects.filter(from_environment=True)}
    for url in urls:
        if url not in known:
            NotificationRoute.objects.get_or_create(
                name=f"{ENVIRONMENT_PREFIX}{url}"[:200],
                defaults={"kind": NotificationRoute.Kind.WEBHOOK, "target": url, "from_environment": True})
    for url, route in known.items():
        if route.enabled != (url in urls):
            NotificationRoute.objects.filter(pk=route.pk).update(enabled=url in urls)


def find_routes():
    return list(NotificationRoute.objects.select_related("channel"))


def get_route(ref):
    """A route by id or name."""
    ref = str(ref)
    found = NotificationRoute.objects.filter(name=ref).first()
    if found is None and ref.isdigit() and int(ref) <= MAX_ID:
        found = NotificationRoute.objects.filter(pk=int(ref)).first()
    if found is None:
        raise NotFound(f"no notification route '{ref[:100]}'")
    return found


def _editable(route):
    if route.from_environment:
        raise Conflict(f"route {route.pk} comes from RETROVUE_ALERT_WEBHOOKS; change the environment instead")
    return route


def save_route(data, route=None, partial=False):
    """Create a route (no `route`) or change one; ConfigError with field errors, nothing written."""
    serializer = RouteSerializer(route and _editable(route), data=data, partial=partial)
    if not serializer.is_valid():
        raise ConfigError(_field_errors(serializer.errors))
    return serializer.save()


def _field_errors(errors, prefix=""):
    """DRF's errors as {field: [message, ...]}; an item of a list is named by its index (kinds.0)."""
    flat = {}
    for field, found in errors.items():
        if isinstance(found, dict):
            flat.update(_field_errors(found, f"{prefix}{field}."))
        else:
            flat[f"{prefix}{field}"] = [str(message) for message in found]
    return flat


def delete_route(route):
    _editable(route).delete()


# --- deliveries --------------------------------------------------------------------------------
def queue_alert_event(alert, event):
    """A pending notification of this alert event for each route that wants it, at most one per
    route however often it is asked; returns how many are new. A clear goes only to the routes
    that were told of the raise and want to hear of resolves."""
    sync_environment_routes()
    routes = NotificationRoute.objects.filter(enabled=True)
    if event == CLEARED:
        routes = routes.filter(send_resolved=True, notifications__alert=alert, notifications__event=RAISED)
    else:
        routes = [route for route in routes if route.matches(alert)]
    told = set(Notification.objects.filter(alert=alert, event=event).values_list("route_id", flat=True))
    now = timezone.now()
    new = [Notification(route=route, alert=alert, event=event, next_attempt_at=now)
           for route in routes if route.pk not in told]
    Notification.objects.bulk_create(new, ignore_conflicts=True)  # a concurrent queue made them first
    return len(new)


def find_notifications(status=None, limit=LIST_LIMIT):
    """Recent deliveries, newest first; `status` one of pending, sent, failed."""
    found = Notification.objects.select_related("route", "alert__channel")
    if status is not None:
        if status not in Notification.Status.values:
            raise ConfigError({"status": [f"'{status[:40]}' is not one of {', '.join(Notification.Status.values)}"]})
        found = found.filter(status=status)
    return list(found[:limit])
