"""`retrovue notifications list|routes|test ROUTE`: recent deliveries, the routes, a test message."""
from django.core.management import CommandError

from notifications_app import services
from notifications_app.delivery import send_trial
from notifications_app.serializers import NotificationSerializer, RouteSerializer
from retrovue.commands import ServiceCommand


def delivery_row(data):
    subject = f"channel {data['channel']}" if data["channel"] is not None else f"host {data['host']}"
    return (f"{data['id']:>5}  {data['created_at'][:19].replace('T', ' ')}  {data['route_name'][:24]:<24}  "
            f"{data['kind']:<12}  {subject[:18]:<18}  {data['event']:<7}  {data['status']:<7}  "
            f"{data['attempts']:>3}  {data['last_error']}")


def route_row(data):
    kinds = ",".join(data["kinds"]) or "all"
    channel = data["channel"] if data["channel"] is not None else "any"
    state = "on" if data["enabled"] else "off"
    return (f"{data['id']:>4}  {data['name'][:24]:<24}  {data['kind']:<7}  {state:<3}  "
            f"{data['min_severity']:<8}  {kinds[:24]:<24}  {channel!s:<7}  {data['target']}")


class Command(ServiceCommand):
    help = "Alert notifications: recent deliveries, the routes, and a test message to one route."
    subcommands = {
        "list": ("recent deliveries, newest first", lambda p: p.add_argument("--status")),
        "routes": ("the notification routes", None),
        "test": ("send a test message to a route now", lambda p: p.add_argument("route", help="id or name")),
    }

    def do_list(self, status, json, **_):
        rows = NotificationSerializer(services.find_notifications(status=status), many=True).data
        header = (f"{'id':>5}  {'created (UTC)':<19}  {'route':<24}  {'kind':<12}  {'subject':<18}  "
                  f"{'event':<7}  {'status':<7}  {'try':>3}  last error")
        self.emit(rows, json, "\n".join([header, *map(delivery_row, rows)]) if rows else "no notifications")

    def do_routes(self, json, **_):
        rows = RouteSerializer(services.find_routes(), many=True).data
        header = (f"{'id':>4}  {'name':<24}  {'kind':<7}  {'on':<3}  {'severity':<8}  {'kinds':<24}  "
                  f"{'channel':<7}  target")
        self.emit(rows, json, "\n".join([header, *map(route_row, rows)]) if rows else "no routes")

    def do_test(self, route, json, **_):
        outcome = send_trial(services.get_route(route))
        if outcome["sent"] or json:
            self.emit(outcome, json, outcome["detail"])
        if not outcome["sent"]:
            raise CommandError(f"not sent: {outcome['detail']}", returncode=1)
