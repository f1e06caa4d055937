"""Alerts that reach people: webhooks and email, from an alert raised or cleared to a receiver.

The receivers are real servers on loopback: an HTTP server in a thread and an SMTP server
(aiosmtpd). No worker: the kick after each alert event runs its Celery task in this process
(Celery's eager mode), and beat's pass is called as the function it runs, with a fake clock."""
import email
import json
import socket
import threading
from datetime import timedelta
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from aiosmtpd.controller import Controller
from django.apps import apps
from django.core.management import CommandError, call_command
from django.utils import timezone

from notifications_app.delivery import backoff, deliver_due
from notifications_app.models import Notification, NotificationRoute
from notifications_app.services import queue_alert_event, save_route
from notifications_app.signals import ensure_delivery_schedule
from notifications_app.tasks import deliver_notifications
from retrovue.celery import app as celery_app
from streams_app.alerts import RAISED, clear_alert, raise_alert
from streams_app.models import Alert

from .factories import make_channel
from .test_cli import retrovue

pytestmark = pytest.mark.django_db(transaction=True)  # alert events are sent once committed
CRITICAL = Alert.Severity.CRITICAL


class Receiver:
    """An HTTP server on loopback that records each POST (path, JSON body) and answers each with
    the next status in `answers`, then 200."""

    def __init__(self):
        self.posts, self.answers = [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts.append((self.path, self.headers["Content-Type"], json.loads(body)))
                status = receiver.answers.pop(0) if receiver.answers else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok" if status < 300 else b"down for maintenance")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def bodies(self, path=None):
        return [body for at, _type, body in self.posts if path is None or at == path]


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.server.shutdown()
    server.server.server_close()


class Inbox:
    """aiosmtpd's handler: every message as the SMTP server received it."""

    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 OK"


def free_tcp_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(settings):
    inbox, port = Inbox(), free_tcp_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"  # not the test outbox
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    yield inbox
    controller.stop()


@pytest.fixture(autouse=True)
def kicks_run_here(settings):
    """The task each alert event kicks runs in this process, as a worker would run it."""
    settings.RETROVUE_NOTIFY_TIMEOUT_SECONDS = 2
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = False


def route(name, target, **fields):
    kind = "email" if "@" in target else "webhook"
    return save_route({"name": name, "kind": kind, "target": target, **fields})


def stall(channel, host="enc-1"):
    return raise_alert(Alert.Kind.STALL, "no output for 2 s", channel_id=channel.pk, host=host,
                       severity=CRITICAL)


def notifications():
    return list(Notification.objects.order_by("pk").values_list("route__name", "event", "status", "attempts"))


def call_command_output(*args):
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


# --- from an alert to a receiver ---------------------------------------------------------------
def test_an_alert_posts_once_with_slack_text_and_fields_then_resolves(receiver):
    route("ops", receiver.url + "/hook")
    channel = make_channel(3, port=5003)
    assert stall(channel)
    [(path, content_type, body)] = receiver.posts
    assert (path, content_type) == ("/hook", "application/json")
    assert body["text"] == ":red_circle: [CRITICAL] STALL on channel 3 (Channel 3) — no output for 2 s"
    assert {k: body[k] for k in ("state", "kind", "severity", "channel", "channel_name", "host", "message",
                                 "cleared_at")} == {
        "state": "firing", "kind": "STALL", "severity": "CRITICAL", "channel": 3, "channel_name": "Channel 3",
        "host": "enc-1", "message": "no output for 2 s", "cleared_at": None}
    assert body["raised_at"].startswith(str(timezone.now().year))

    assert not stall(channel)  # still open: a refresh, not an event
    alert = Alert.objects.get()
    assert queue_alert_event(alert, RAISED) == 0  # asked again: one delivery per route and event
    assert deliver_due() == {"sent": [], "retrying": [], "failed": []}
    assert len(receiver.posts) == 1

    assert clear_alert(Alert.Kind.STALL, channel_id=channel.pk)
    resolved = receiver.bodies()[1]
    assert resolved["text"] == ":white_check_mark: [RESOLVED] STALL on channel 3 (Channel 3) — no output for 2 s"
    assert resolved["state"] == "resolved" and resolved["cleared_at"]
    assert notifications() == [("ops", "raised", "sent", 1), ("ops", "cleared", "sent", 1)]


def test_environment_webhooks_hear_every_alert(receiver, settings):
    settings.RETROVUE_ALERT_WEBHOOKS = [receiver.url + "/env"]
    raise_alert(Alert.Kind.HOST_LOST, "no heartbeat since 12:00:00", host="enc-1", severity=CRITICAL)
    [body] = receiver.bodies("/env")
    assert body["text"] == ":red_circle: [CRITICAL] HOST_LOST on host enc-1 — no heartbeat since 12:00:00"
    assert body["channel"] is None and body["host"] == "enc-1"
    env_route = NotificationRoute.objects.get()
    assert env_route.from_environment and env_route.name == f"env: {receiver.url}/env"

    settings.RETROVUE_ALERT_WEBHOOKS = []  # removed from the environment: disabled, history kept
    raise_alert(Alert.Kind.CPU, "host CPU at 97%", host="enc-1")
    assert len(receiver.posts) == 1 and not NotificationRoute.objects.get().enabled


def test_filters_route_each_alert_to_the_routes_that_want_it(receiver):
    three, four = make_channel(3, port=5003), make_channel(4, port=5004)
    route("critical", receiver.url + "/critical", min_severity="CRITICAL")
    route("cpu", receiver.url + "/cpu", kinds=["CPU"])
    route("channel-3", receiver.url + "/channel-3", channel=3)
    route("enc-2", receiver.url + "/enc-2", host="enc-2")
    route("quiet", receiver.url + "/quiet", send_resolved=False)
    raise_alert(Alert.Kind.CPU, "ffmpeg uses 31% CPU", channel_id=three.pk, host="enc-1")
    raise_alert(Alert.Kind.HOST_LOST, "no heartbeat", host="enc-2", severity=CRITICAL)
    raise_alert(Alert.Kind.STALL, "no output", channel_id=four.pk, host="enc-2")
    clear_alert(Alert.Kind.CPU, channel_id=three.pk)
    received = sorted((path, body["kind"], body["state"]) for path, _type, body in receiver.posts)
    assert received == [
        ("/channel-3", "CPU", "firing"), ("/channel-3", "CPU", "resolved"),
        ("/cpu", "CPU", "firing"), ("/cpu", "CPU", "resolved"),
        ("/critical", "HOST_LOST", "firing"),
        ("/enc-2", "HOST_LOST", "firing"), ("/enc-2", "STALL", "firing"),
        ("/quiet", "CPU", "firing"), ("/quiet", "HOST_LOST", "firing"), ("/quiet", "STALL", "firing"),
    ]


# --- retries -----------------------------------------------------------------------------------
def test_backoff_grows_threefold_from_ten_seconds_to_an_hour():
    assert [backoff(n) for n in range(1, 6)] == [10, 30, 90, 270, 810]
    assert backoff(20) == 3600


def step_to_next_attempt(offset_seconds=0):
    """Beat's pass at the pending notification's next attempt (plus an offset), on a fake clock."""
    pending = Notification.objects.get(status="pending")
    return deliver_due(pending.next_attempt_at + timedelta(seconds=offset_seconds))


def test_a_failing_receiver_is_retried_with_backoff_until_it_takes_it(receiver):
    receiver.answers = [500, 500]
    route("ops", receiver.url)
    stall(make_channel(3, port=5003))  # the kick's try: 500
    first = Notification.objects.get()
    assert (first.status, first.attempts) == ("pending", 1)
    assert first.last_error == f"127.0.0.1:{receiver.server.server_port} answered HTTP 500: down for maintenance"
    assert (first.next_attempt_at - first.created_at).total_seconds() == pytest.approx(10, abs=1)

    assert step_to_next_attempt(-1) == {"sent": [], "retrying": [], "failed": []}  # not yet due
    assert step_to_next_attempt() == {"sent": [], "retrying": [first.pk], "failed": []}  # 500 again
    second = Notification.objects.get()
    assert (second.next_attempt_at - first.next_attempt_at).total_seconds() == 30
    assert step_to_next_attempt() == {"sent": [first.pk], "retrying": [], "failed": []}
    assert notifications() == [("ops", "raised", "sent", 3)]
    assert len(receiver.posts) == 3 and receiver.bodies()[0] == receiver.bodies()[2]


def test_a_clear_waits_for_its_raise_to_be_delivered(receiver):
    receiver.answers = [500]
    route("ops", receiver.url)
    channel = make_channel(3, port=5003)
    stall(channel)  # refused: retried in 10 s
    clear_alert(Alert.Kind.STALL, channel_id=channel.pk)  # due now, but held back
    raised, cleared = Notification.objects.order_by("pk")
    assert len(receiver.posts) == 1 and cleared.status == "pending" and cleared.attempts == 0
    at = raised.next_attempt_at
    assert deliver_due(at) == {"sent": [raised.pk], "retrying": [], "failed": []}
    assert deliver_due(at) == {"sent": [cleared.pk], "retrying": [], "failed": []}
    assert [body["state"] for body in receiver.bodies()] == ["firing", "firing", "resolved"]


def test_after_its_last_attempt_a_delivery_is_failed_with_the_error_shown(settings, api, admin_client):
    settings.RETROVUE_NOTIFY_MAX_ATTEMPTS = 3
    route("nobody home", f"http://127.0.0.1:{free_tcp_port()}/hook")  # nothing listens there
    stall(make_channel(3, port=5003))
    step_to_next_attempt()
    failed = step_to_next_attempt()["failed"]
    assert notifications() == [("nobody home", "raised", "failed", 3)]
    assert deliver_due(timezone.now() + timedelta(days=1)) == {"sent": [], "retrying": [], "failed": []}

    [listed] = api.get("/api/notifications", {"status": "failed"}).json()
    assert listed["id"] == failed[0] and listed["attempts"] == 3 and "Connection refused" in listed["last_error"]
    assert listed["route_name"] == "nobody home" and listed["kind"] == "STALL" and listed["channel"] == 3
    assert api.get("/api/notifications", {"status": "lost"}).status_code == 400
    page = admin_client.get(f"/admin/notifications_app/notification/{failed[0]}/change/").content.decode()
    assert "Connection refused" in page and 'name="_save"' not in page  # read-only


def test_email_routes_reach_a_real_smtp_server(smtp):
    route("on call", "ops@example.com,  oncall@example.com")
    assert NotificationRoute.objects.get().target == "ops@example.com, oncall@example.com"
    raise_alert(Alert.Kind.HOST_LOST, "no heartbeat since 12:00:00", host="enc-1", severity=CRITICAL)
    [envelope] = smtp.envelopes
    assert envelope.rcpt_tos == ["ops@example.com", "oncall@example.com"]
    message = email.message_from_bytes(envelope.original_content, policy=default_policy)
    assert message["Subject"] == "[RetroVue] [CRITICAL] HOST_LOST on host enc-1"
    body = message.get_content().replace("\r\n", "\n")  # as sent over SMTP
    assert body.startswith(":red_circle: [CRITICAL] HOST_LOST on host enc-1 — no heartbeat since 12:00:00\n")
    assert "state: firing" in body and "host: enc-1" in body


# --- API, CLI, admin -----------------------------------------------------------------------------
@pytest.mark.parametrize("body,field", [
    ({"kind": "webhook", "target": "ftp://example.com/hook"}, "target"),
    ({"kind": "webhook", "target": "not a url"}, "target"),
    ({"kind": "webhook", "target": "http://"}, "target"),
    ({"kind": "email", "target": "ops@example.com, nobody"}, "target"),
    ({"kind": "email", "target": " , "}, "target"),
    ({"kind": "sms", "target": "+15550100"}, "kind"),
    ({"kind": "webhook", "target": "https://example.com/h", "kinds": ["NOPE"]}, "kinds"),
    ({"kind": "webhook", "target": "https://example.com/h", "channel": 404}, "channel"),
    ({"kind": "webhook", "target": "https://example.com/h", "min_severity": "INFO"}, "min_severity"),
    ({"name": "env: mine", "kind": "webhook", "target": "https://example.com/h"}, "name"),
])
def test_api_refuses_bad_routes_with_field_errors(api, body, field):
    response = api.post("/api/notifications/routes", {"name": "ops", **body}, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert not NotificationRoute.objects.exists()


def test_api_creates_changes_and_deletes_routes(api, settings):
    make_channel(3, port=5003)
    created = api.post("/api/notifications/routes", {
        "name": "ops", "kind": "webhook", "target": "https://hooks.example.com/T0/B0", "kinds": ["STALL"],
        "channel": 3, "min_severity": "CRITICAL"}, format="json")
    assert created.status_code == 201, created.content
    data = created.json()
    assert (data["channel"], data["kinds"], data["enabled"], data["send_resolved"]) == (3, ["STALL"], True, True)
    url = f"/api/notifications/routes/{data['id']}"
    assert api.patch(url, {"target": "mailto:x"}, format="json").status_code == 400
    changed = api.patch(url, {"enabled": False, "channel": None}, format="json").json()
    assert (changed["enabled"], changed["channel"], changed["kinds"]) == (False, None, ["STALL"])
    assert api.put(url, {"name": "ops", "kind": "email", "target": "ops@example.com"}, format="json").json()["kind"] \
        == "email"
    assert api.get("/api/notifications/routes/ops").json()["id"] == data["id"]  # by name too
    assert api.delete(url).status_code == 204 and api.get(url).status_code == 404

    settings.RETROVUE_ALERT_WEBHOOKS = ["https://hooks.example.com/env"]
    ensure_delivery_schedule(apps.get_app_config("notifications_app"))
    [env_route] = api.get("/api/notifications/routes").json()
    refused = api.delete(f"/api/notifications/routes/{env_route['id']}")
    assert refused.status_code == 409 and "RETROVUE_ALERT_WEBHOOKS" in refused.json()["detail"]


def test_test_endpoint_answers_200_or_502_with_the_receivers_error(api, receiver):
    ok = route("ops", receiver.url)
    answer = api.post(f"/api/notifications/routes/{ok.pk}/test")
    assert answer.status_code == 200 and answer.json()["sent"] is True
    assert receiver.bodies()[0]["state"] == "test" and "route 'ops'" in receiver.bodies()[0]["text"]
    receiver.answers = [503]
    answer = api.post(f"/api/notifications/routes/{ok.pk}/test")
    assert answer.status_code == 502
    assert answer.json() == {"route": ok.pk, "sent": False,
                             "detail": f"127.0.0.1:{receiver.server.server_port} answered HTTP 503: down for maintenance"}
    assert api.post("/api/notifications/routes/404/test").status_code == 404
    assert not Notification.objects.exists()  # a test message is no delivery of an alert


def test_cli_tests_a_route_and_lists_deliveries(receiver):
    ops = route("ops", receiver.url)
    stall(make_channel(3, port=5003))
    out = call_command_output("notifications", "test", "ops")
    assert out.strip() == f"test notification sent to {receiver.url}" and len(receiver.posts) == 2
    listed = call_command_output("notifications", "list").splitlines()
    assert "route" in listed[0] and "ops" in listed[1] and "STALL" in listed[1] and "sent" in listed[1]
    assert json.loads(call_command_output("notifications", "routes", "--json"))[0]["id"] == ops.pk
    with pytest.raises(CommandError, match="'lost' is not one of") as raised:
        call_command_output("notifications", "list", "--status", "lost")
    assert raised.value.returncode == 2

    done = retrovue("notifications", "test", "404")
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "no notification route '404'" in lines[0], done.stderr


def test_admin_checks_routes_as_the_api_does(admin_client):
    form = {"name": "ops", "kind": "webhook", "target": "gopher://example.com", "min_severity": "WARNING",
            "kinds": "[]", "channel": "", "host": "", "enabled": "on", "send_resolved": "on"}
    page = admin_client.post("/admin/notifications_app/notificationroute/add/", form).content.decode()
    assert "is not an http:// or https:// URL with a host" in page and not NotificationRoute.objects.exists()
    form.update(target="https://hooks.example.com/x", kinds='["STALL", "NOPE"]')
    assert "a list of alert kinds" in admin_client.post("/admin/notifications_app/notificationroute/add/",
                                                         form).content.decode()
    form.update(kinds='["STALL"]')
    assert admin_client.post("/admin/notifications_app/notificationroute/add/", form).status_code == 302
    assert NotificationRoute.objects.get().kinds == ["STALL"]


def test_admin_sends_a_test_notification_through_the_same_service(admin_client, receiver):
    ok, down = route("ops", receiver.url + "/ok"), route("down", f"http://127.0.0.1:{free_tcp_port()}/")
    response = admin_client.post("/admin/notifications_app/notificationroute/",
                                 {"action": "send_test", "_selected_action": [ok.pk, down.pk]}, follow=True)
    shown = [str(m) for m in response.context["messages"]]
    assert f"ops: test notification sent to {receiver.url}/ok" in shown
    assert any(m.startswith("down: ") and "Connection refused" in m for m in shown)
    assert receiver.bodies("/ok")[0]["state"] == "test"
    for changelist in ("notificationroute", "notification"):
        assert admin_client.get(f"/admin/notifications_app/{changelist}/").status_code == 200


def test_beat_runs_the_delivery_pass_with_an_expiry(settings):
    from django_celery_beat.models import PeriodicTask

    ensure_delivery_schedule(apps.get_app_config("notifications_app"))
    task = PeriodicTask.objects.get(name="retrovue: deliver notifications")
    assert (task.task, task.interval.every, task.expire_seconds) == (
        deliver_notifications.name, settings.RETROVUE_NOTIFY_INTERVAL_SECONDS, settings.RETROVUE_NOTIFY_INTERVAL_SECONDS)
    assert deliver_notifications() == {"sent": [], "retrying": [], "failed": []}


# --- Prometheus and the dashboards ---------------------------------------------------------------
def test_an_open_alert_is_a_prometheus_series_until_it_clears(client):
    channel = make_channel(3, port=5003)
    stall(channel)
    raise_alert(Alert.Kind.HOST_LOST, "no heartbeat", host="enc-2", severity=CRITICAL)
    scraped = client.get("/metrics").content.decode()
    assert 'retrovue_alert_open{channel="3",host="enc-1",kind="STALL",severity="CRITICAL"} 1.0' in scraped
    assert 'retrovue_alert_open{channel="",host="enc-2",kind="HOST_LOST",severity="CRITICAL"} 1.0' in scraped
    clear_alert(Alert.Kind.STALL, channel_id=channel.pk)
    scraped = client.get("/metrics").content.decode()
    assert 'kind="STALL"' not in scraped and 'kind="HOST_LOST"' in scraped


def test_dashboard_pages_show_the_open_alerts_banner(admin_client):
    channel = make_channel(3, port=5003)
    assert "open alert" not in admin_client.get("/channels").content.decode()
    stall(channel)
    for number in range(6):
        raise_alert(Alert.Kind.CPU, f"host CPU at 9{number}%", host=f"enc-{number + 10}")
    page = admin_client.get("/streams").content.decode()
    assert "7 open alerts" in page and page.count("<li class=\"warning\">") + page.count("<li class=\"critical\">") == 5
    assert 'href="/admin/streams_app/alert/?open=yes">all 7 open alerts</a>' in page
    assert "no output for 2 s" not in page  # the oldest, beyond the newest five
    clear_alert(Alert.Kind.STALL, channel_id=channel.pk)
    assert "6 open alerts" in admin_client.get("/resources").content.decode()
