"""Alerts raised and cleared by beat's evaluation, and read through the API, the CLI and the admin.

No worker here: stream runs and hosts are rows with the metrics a supervisor or a heartbeat
would have written."""
import json
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.messages import get_messages
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from channels_app.models import Channel
from resources_app.models import EncodeHost
from streams_app.alerts import clear_alert, evaluate_alerts, raise_alert
from streams_app.models import Alert, ControlLoopRun, Stream

from .factories import make_channel
from .test_cli import retrovue

pytestmark = pytest.mark.django_db
ALERTS = "/admin/streams_app/alert/"


@pytest.fixture(autouse=True)
def evaluations_already_running():
    """Alert evaluation has been running steadily (no outage grace), as under beat."""
    now = timezone.now()
    ControlLoopRun.objects.create(name="alert-evaluation", last_run_at=now)
    ControlLoopRun.objects.create(name="alert-evaluation:grace", last_run_at=now - timedelta(days=1))


def channel(number):
    return make_channel(number, port=5000 + number)


def running(number, **fields):
    """A current RUNNING run of a new channel (default limits: 25% CPU, 2048 MB)."""
    ch = channel(number)
    return Stream.objects.create(channel=ch, host="enc-1", generation=ch.generation,
                                 status=Stream.Status.RUNNING, **fields)


def host(name, age=0.0, **fields):
    return EncodeHost.objects.create(name=name, last_heartbeat=timezone.now() - timedelta(seconds=age),
                                     **fields)


def log(count, level="error", age=0.0):
    at = (timezone.now() - timedelta(seconds=age)).isoformat()
    return [{"at": at, "line": f"[{level}] udp://127.0.0.1:5001: packet lost {i}"} for i in range(count)]


def open_alerts():
    """(kind, channel number or host) -> (severity, message) of every open alert."""
    return {(a.kind, a.channel.number if a.channel else a.host): (a.severity, a.message)
            for a in Alert.objects.filter(cleared_at=None).select_related("channel")}


# Each case: kind, the run's fields over the threshold, under it, and the message raised.
CHANNEL_RULES = [
    ("CPU", lambda: {"health_metrics": {"cpu_percent": 31.0}},
     lambda: {"health_metrics": {"cpu_percent": 19.0}},  # 76% of the limit
     "ffmpeg uses 31% CPU, 124% of its 25% limit"),
    ("MEMORY", lambda: {"health_metrics": {"memory_mb": 1900.0}},
     lambda: {"health_metrics": {"memory_mb": 1700.0}},  # 83% of the limit
     "ffmpeg uses 1900 MB memory, 93% of its 2048 MB limit"),
    ("ERROR_RATE", lambda: {"error_log": log(5)},
     lambda: {"error_log": log(4) + log(9, level="warning") + log(9, age=61)},
     "5 FFmpeg errors in the last minute"),
]


@pytest.mark.parametrize("kind,over,under,message", CHANNEL_RULES, ids=[c[0] for c in CHANNEL_RULES])
def test_channel_rule_raises_once_and_clears(kind, over, under, message):
    stream = running(1, **over())

    assert evaluate_alerts() == {"raised": [f"{kind} channel 1"], "cleared": []}
    assert open_alerts() == {(kind, 1): ("WARNING", message)}
    first = Alert.objects.get()
    assert evaluate_alerts() == {"raised": [], "cleared": []}
    again = Alert.objects.get()
    assert again.pk == first.pk and again.last_seen_at > first.last_seen_at

    Stream.objects.filter(pk=stream.pk).update(**under())
    assert evaluate_alerts() == {"raised": [], "cleared": [f"{kind} channel 1"]}
    assert open_alerts() == {} and Alert.objects.get().cleared_at is not None
    assert evaluate_alerts() == {"raised": [], "cleared": []}


def test_a_changed_reading_updates_the_open_alert():
    stream = running(1, health_metrics={"cpu_percent": 31.0})
    evaluate_alerts()
    Stream.objects.filter(pk=stream.pk).update(health_metrics={"cpu_percent": 50.0})

    assert evaluate_alerts() == {"raised": [], "cleared": []}
    alert = Alert.objects.get()
    assert alert.message == "ffmpeg uses 50% CPU, 200% of its 25% limit"
    assert (alert.value, alert.threshold) == (200.0, 80.0)


def test_a_channel_that_stops_clears_its_threshold_alerts_but_not_the_supervisors():
    stream = running(1, health_metrics={"cpu_percent": 31.0, "memory_mb": 2000.0}, error_log=log(6))
    raise_alert(Alert.Kind.STALL, "1 ch1: output stalled for 2s", channel_id=stream.channel_id)
    evaluate_alerts()
    assert set(open_alerts()) == {("CPU", 1), ("MEMORY", 1), ("ERROR_RATE", 1), ("STALL", 1)}

    Stream.objects.filter(pk=stream.pk).update(status=Stream.Status.STOPPED)
    assert sorted(evaluate_alerts()["cleared"]) == ["CPU channel 1", "ERROR_RATE channel 1",
                                                    "MEMORY channel 1"]
    assert set(open_alerts()) == {("STALL", 1)}


def test_only_the_current_run_of_a_channel_is_judged():
    stream = running(1, health_metrics={"cpu_percent": 90.0})
    Channel.objects.filter(pk=stream.channel_id).update(generation=stream.generation + 1)
    assert evaluate_alerts() == {"raised": [], "cleared": []}


def test_host_cpu_and_memory_raise_and_clear():
    host("enc-1", cpu_percent=95.0, memory_percent=90.0)
    host("enc-2", cpu_percent=50.0, memory_percent=50.0)

    assert sorted(evaluate_alerts()["raised"]) == ["CPU host enc-1", "MEMORY host enc-1"]
    assert open_alerts() == {("CPU", "enc-1"): ("WARNING", "host CPU at 95%"),
                             ("MEMORY", "enc-1"): ("WARNING", "host memory at 90%")}
    assert Alert.objects.filter(channel=None).count() == 2

    EncodeHost.objects.filter(name="enc-1").update(cpu_percent=40.0)
    assert evaluate_alerts() == {"raised": [], "cleared": ["CPU host enc-1"]}
    assert set(open_alerts()) == {("MEMORY", "enc-1")}


def test_host_lost_is_critical_and_clears_on_heartbeat_or_clean_shutdown():
    host("enc-online", age=10, cpu_percent=99.0)  # a stale reading is not judged
    host("enc-draining", age=10, state=EncodeHost.State.DRAINING)
    host("enc-offline", age=10, state=EncodeHost.State.OFFLINE)
    host("enc-fresh", age=1)
    lost = ["HOST_LOST host enc-draining", "HOST_LOST host enc-online"]

    assert sorted(evaluate_alerts()["raised"]) == lost
    alerts = open_alerts()
    assert set(alerts) == {("HOST_LOST", "enc-online"), ("HOST_LOST", "enc-draining")}
    assert alerts["HOST_LOST", "enc-online"][0] == "CRITICAL"
    assert alerts["HOST_LOST", "enc-online"][1].startswith("no heartbeat since ")
    assert Alert.objects.get(host="enc-online").threshold == 3.0
    assert evaluate_alerts() == {"raised": [], "cleared": []}

    EncodeHost.objects.filter(name="enc-online").update(last_heartbeat=timezone.now())
    EncodeHost.objects.filter(name="enc-draining").update(state=EncodeHost.State.OFFLINE)
    assert sorted(evaluate_alerts()["cleared"]) == lost
    assert set(open_alerts()) == {("CPU", "enc-online")}  # its fresh reading is judged now


def test_evaluation_costs_the_same_queries_for_more_channels_and_hosts():
    def steady_queries():
        evaluate_alerts()
        with CaptureQueriesContext(connection) as queries:
            assert evaluate_alerts() == {"raised": [], "cleared": []}
        return len(queries)

    running(1, health_metrics={"cpu_percent": 31.0})
    host("enc-1", cpu_percent=95.0)
    few = steady_queries()
    for number in range(2, 7):
        running(number, health_metrics={"cpu_percent": 31.0, "memory_mb": 2000.0})
        host(f"enc-{number}", age=10)
    assert steady_queries() == few <= 7  # one of them reads the stored system defaults (thresholds)


# --- API ---------------------------------------------------------------------------------------
@pytest.fixture
def alerts():
    """Channel 1 CPU (open), channel 2 CPU (cleared), host enc-1 lost (open, newest)."""
    one, two = channel(1), channel(2)
    raise_alert(Alert.Kind.CPU, "ffmpeg uses 31% CPU", channel_id=one.pk, value=124, threshold=80)
    raise_alert(Alert.Kind.CPU, "ffmpeg uses 30% CPU", channel_id=two.pk)
    clear_alert(Alert.Kind.CPU, channel_id=two.pk)
    raise_alert(Alert.Kind.HOST_LOST, "no heartbeat since 2024-01-01T00:00:00+00:00", host="enc-1",
                severity=Alert.Severity.CRITICAL)
    return one, two


def listed(api, query=""):
    response = api.get(f"/api/alerts{query}")
    assert response.status_code == 200, response.data
    return [(a["kind"], a["channel"] or a["host"], a["open"]) for a in response.data]


def test_api_requires_authentication(alerts):
    assert APIClient().get("/api/alerts").status_code == 401


def test_api_lists_open_alerts_newest_first_with_every_field(api, alerts):
    assert listed(api) == [("HOST_LOST", "enc-1", True), ("CPU", 1, True)]
    cpu = api.get("/api/alerts?kind=CPU").data[0]
    assert set(cpu) == {"id", "kind", "severity", "channel", "channel_name", "host", "message", "value",
                        "threshold", "raised_at", "last_seen_at", "cleared_at", "open"}
    assert (cpu["channel"], cpu["channel_name"], cpu["value"], cpu["threshold"], cpu["cleared_at"]) == (
        1, "Channel 1", 124.0, 80.0, None)
    lost = api.get("/api/alerts?host=enc-1").data[0]
    assert (lost["channel"], lost["channel_name"], lost["severity"]) == (None, None, "CRITICAL")


def test_api_filters(api, alerts):
    one, two = alerts
    assert listed(api, "?all=1") == [("HOST_LOST", "enc-1", True), ("CPU", 2, False), ("CPU", 1, True)]
    assert listed(api, "?all=1&channel=2") == [("CPU", 2, False)]
    assert listed(api, f"?channel={one.pk}") == listed(api, "?channel=1") == [("CPU", 1, True)]
    assert listed(api, "?kind=host_lost") == [("HOST_LOST", "enc-1", True)]
    assert listed(api, "?host=enc-9") == []
    assert listed(api, "?all=false&kind=CPU") == [("CPU", 1, True)]


@pytest.mark.parametrize("query,field", [
    ("?channel=99", "channel"), ("?channel=not-a-uuid", "channel"), ("?kind=FIRE", "kind"),
    ("?all=maybe", "all"), ("?host=", "host"),
])
def test_api_bad_filter_is_400_with_the_field(api, alerts, query, field):
    response = api.get(f"/api/alerts{query}")
    assert response.status_code == 400
    assert list(response.data) == [field], response.data


def test_api_history_is_capped(api):
    now = timezone.now()
    Alert.objects.bulk_create(Alert(kind=Alert.Kind.CPU, host="enc-1", message=f"old {i}", cleared_at=now)
                              for i in range(205))
    assert len(api.get("/api/alerts?all=1").data) == 200


# --- CLI ---------------------------------------------------------------------------------------
def alerts_command(*args):
    out = StringIO()
    call_command("alerts", *args, stdout=out)
    return out.getvalue()


def test_cli_lists_open_alerts_as_a_table(alerts):
    lines = alerts_command().splitlines()
    assert lines[0].split() == ["id", "kind", "severity", "subject", "raised", "(UTC)", "state", "message"]
    assert [line.split()[1] for line in lines[1:]] == ["HOST_LOST", "CPU"]
    assert "host enc-1" in lines[1] and "CRITICAL" in lines[1]
    assert "channel 1" in lines[2] and lines[2].endswith("ffmpeg uses 31% CPU")

    history = alerts_command("--all")
    assert "channel 2" in history and "cleared" in history
    rows = json.loads(alerts_command("--all", "--channel", "2", "--json"))
    assert [(r["kind"], r["channel"], r["open"]) for r in rows] == [("CPU", 2, False)]


def test_cli_says_when_nothing_is_open():
    assert alerts_command().strip() == "no open alerts"
    with pytest.raises(CommandError, match="no channel '404'") as raised:
        alerts_command("--channel", "404")
    assert raised.value.returncode == 2


@pytest.mark.django_db(transaction=True)
def test_cli_bad_channel_exits_2_with_one_line():
    done = retrovue("alerts", "--channel", "404")
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "no channel '404'" in lines[0], done.stderr


# --- admin -------------------------------------------------------------------------------------
def messages_of(response):
    return [(m.level_tag, str(m)) for m in get_messages(response.wsgi_request)]


def test_admin_lists_alerts_read_only_with_filters(admin_client, alerts):
    page = admin_client.get(ALERTS).content.decode()
    for column in ("kind", "severity", "channel", "host", "message", "raised_at", "cleared_at", "open"):
        assert f'column-{column}' in page, column
    assert '<td class="field-host">enc-1</td>' in page and "ffmpeg uses 31% CPU" in page
    assert admin_client.get(f"{ALERTS}?open=yes").context["cl"].result_count == 2
    assert admin_client.get(f"{ALERTS}?open=no").context["cl"].result_count == 1
    assert admin_client.get(f"{ALERTS}?kind__exact=HOST_LOST").context["cl"].result_count == 1

    alert = Alert.objects.get(kind=Alert.Kind.HOST_LOST)
    assert admin_client.get(f"{ALERTS}add/").status_code == 403
    assert admin_client.get(f"{ALERTS}{alert.pk}/delete/").status_code == 403
    assert admin_client.post(f"{ALERTS}{alert.pk}/change/", {"message": "edited"}).status_code == 403
    page = admin_client.get(f"{ALERTS}{alert.pk}/change/").content.decode()
    assert "no heartbeat since" in page and 'name="message"' not in page


def test_admin_clear_action_acknowledges_open_alerts(admin_client, alerts):
    selected = Alert.objects.filter(kind=Alert.Kind.CPU)  # one open, one already cleared
    response = admin_client.post(ALERTS, {"action": "clear", "_selected_action": [a.pk for a in selected]})
    assert response.status_code == 302
    assert messages_of(response) == [("success", "Cleared 1 of 2 selected alerts.")]
    assert set(open_alerts()) == {("HOST_LOST", "enc-1")}


def test_host_lost_waits_one_ttl_after_a_gap_in_evaluations():
    """After an outage every heartbeat looks old: hosts get a TTL to resume before HOST_LOST."""
    host("enc-1", age=60)
    ControlLoopRun.objects.filter(name="alert-evaluation").update(
        last_run_at=timezone.now() - timedelta(seconds=60))
    assert evaluate_alerts()["raised"] == []
    later = timezone.now() + timedelta(seconds=settings.RETROVUE_LEASE_TTL_SECONDS + 0.5)
    assert evaluate_alerts(now=later - timedelta(seconds=1)) == {"raised": [], "cleared": []}
    assert evaluate_alerts(now=later)["raised"] == ["HOST_LOST host enc-1"]
