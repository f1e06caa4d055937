"""Admission control, placement and reservations, on host rows (no worker): the rules alone.

The same rules with real workers, FFmpeg and a killed host are in test_resource_hosts.py."""
import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from channels_app import services
from resources_app import allocations, planning
from resources_app import services as resources
from resources_app.models import EncodeHost, ResourceAllocation
from resources_app.requirements import parse_cores, parse_mbps, parse_memory_mb
from retrovue.errors import ConfigError, DoesNotFit
from streams_app import lifecycle
from streams_app.alerts import evaluate_alerts
from streams_app.models import Alert, ControlLoopRun, Stream

from .factories import make_channel
from .test_cli import retrovue

pytestmark = pytest.mark.django_db


def host(name, age=0.0, **fields):
    """A 2-core, 4 GiB host (max_channels 8) whose heartbeat is `age` seconds old."""
    defaults = {"cpu_count": 2, "memory_mb": 4096, "capacity": 8, "bandwidth_mbps": 1000}
    return EncodeHost.objects.create(name=name, last_heartbeat=timezone.now() - timedelta(seconds=age),
                                     **{**defaults, **fields})


def channel(number, **config):
    return make_channel(number, port=5000 + number, **config)


def limits(cpu=25, memory=256, bandwidth=10):
    return {"resource_limits": {"max_cpu_percent": cpu, "max_memory_mb": memory,
                                "max_bandwidth_mbps": bandwidth}}


def placed(number):
    return ResourceAllocation.objects.select_related("host").get(channel__number=number).host.name


def test_units_cores_memory_and_bandwidth():
    assert parse_cores("2") == 200 and parse_cores(0.5) == 50
    assert parse_memory_mb("4g") == 4096 and parse_memory_mb("512m") == 512 and parse_memory_mb(300) == 300
    assert parse_mbps("10") == 10 and parse_mbps("1g") == 1000
    for parse, bad in ((parse_cores, "two"), (parse_cores, "0"), (parse_memory_mb, "4t"),
                       (parse_mbps, "-3"), (parse_cores, True)):
        with pytest.raises(ConfigError):
            parse(bad)


def test_product_defaults_fill_a_two_core_host_exactly_at_max_channels():
    host("enc-1")
    for number in range(1, 9):  # the product template: 25 % CPU, 2048 MB would not fit 4 GiB
        lifecycle.start_channel(channel(number, **limits(memory=256)))
    assert ResourceAllocation.objects.filter(host__name="enc-1").count() == 8
    with pytest.raises(DoesNotFit) as refused:
        lifecycle.start_channel(channel(9, **limits(memory=256)))
    message = str(refused.value)
    assert "CPU needs 25%, 0% free of 200%" in message and "channels 8/8 (max_channels)" in message
    assert refused.value.details["shortfall"]["enc-1"]
    assert services.get_channel(9).status == "STOPPED"  # nothing half-started
    assert not Stream.objects.filter(channel__number=9).exists()


def test_spread_by_default_pack_as_an_option():
    host("enc-1")
    host("enc-2")
    lifecycle.start_channel(channel(1, **limits(cpu=50)))
    lifecycle.start_channel(channel(2, **limits(cpu=50)))
    assert {placed(1), placed(2)} == {"enc-1", "enc-2"}
    with override_settings(RETROVUE_PLACEMENT_STRATEGY="pack"):
        lifecycle.start_channel(channel(3, **limits(cpu=50)))
        lifecycle.start_channel(channel(4, **limits(cpu=50)))
    assert placed(3) == placed(4)


def test_refusal_names_the_shortfall_of_every_host_and_the_api_answers_409(admin_client):
    host("enc-1", memory_mb=1024)
    host("enc-2", cpu_count=1)
    channel(1, **limits(cpu=150, memory=2048, bandwidth=10))
    response = admin_client.post("/api/channels/1/start")
    assert response.status_code == 409
    body = response.json()
    assert body["shortfall"] == {
        "enc-1": ["memory needs 2048 MB, 1024 MB free of 1024 MB"],
        "enc-2": ["CPU needs 150%, 100% free of 100%"]}
    assert "channel 1 does not fit (needs 150% CPU, 2048 MB memory, 10 Mbit/s bandwidth)" in body["detail"]


def test_pinned_host_and_label_are_honoured_and_stale_hosts_never_chosen():
    host("enc-1")
    host("enc-2", labels=["nvenc"])
    host("enc-stale", age=60, cpu_count=64)
    lifecycle.start_channel(channel(1, placement_settings={"label": "nvenc"}))
    lifecycle.start_channel(channel(2, placement_settings={"host": "enc-2"}))
    lifecycle.start_channel(channel(3, **limits(memory=256)))
    assert (placed(1), placed(2), placed(3)) == ("enc-2", "enc-2", "enc-1")
    with pytest.raises(ConfigError):
        channel(4, placement_settings={"host": "bad host!"})


def test_pinned_to_an_offline_host_is_refused_clearly():
    host("enc-1")
    host("enc-stale", age=60)
    ch = channel(1, placement_settings={"host": "enc-stale"})
    with pytest.raises(Exception, match="pinned to host enc-stale, which is not online"):
        lifecycle.start_channel(ch)
    assert not ResourceAllocation.objects.exists()


def test_stop_releases_and_delete_cascades():
    host("enc-1")
    ch = lifecycle.start_channel(channel(1, **limits()))
    run = Stream.objects.get(channel=ch)
    assert ResourceAllocation.objects.get(channel=ch).stream == run
    Stream.objects.filter(pk=run.pk).update(status="STOPPED")
    allocations.release_run(run.pk)  # what the supervisor does when the run ends
    assert not ResourceAllocation.objects.exists()
    resources.allocate({"channel": 1, "cpu": "0.5"})  # a hold on a stopped channel
    lifecycle.stop_channel(services.get_channel(1))
    assert not ResourceAllocation.objects.exists()
    resources.allocate({"channel": 1, "cpu": "0.5"})
    assert ResourceAllocation.objects.filter(channel__number=1).exists()
    services.delete_channel(services.get_channel(1))
    assert not ResourceAllocation.objects.exists()


def test_allocate_holds_room_that_the_start_then_uses_and_release_frees(admin_client):
    host("enc-1")
    host("enc-2")
    channel(1, **limits(memory=256))
    response = admin_client.post("/api/resources/allocate", {"channel": 1, "cpu": 1.5, "memory_mb": "1g"},
                                 content_type="application/json")
    assert response.status_code == 200, response.json()
    held = response.json()
    assert (held["cpu"], held["cpu_percent"], held["memory_mb"], held["running"]) == (1.5, 150, 1024, False)
    status = admin_client.get("/api/resources/status").json()
    reserved = {h["name"]: h["cpu"]["reserved"] for h in status["hosts"]}
    assert sorted(reserved.values()) == [0, 150] and status["totals"]["cpu"]["reserved"] == 150
    lifecycle.start_channel(services.get_channel(1))
    allocation = ResourceAllocation.objects.get(channel__number=1)
    assert (allocation.host.name, allocation.cpu_percent, allocation.manual) == (held["host"], 150, True)
    assert allocation.stream is not None
    # Running: release is refused, a bigger allocation must fit on its own host.
    assert admin_client.post("/api/resources/release", {"channel": 1},
                             content_type="application/json").status_code == 409
    too_big = admin_client.post("/api/resources/allocate", {"channel": 1, "cpu": 3},
                                content_type="application/json")
    assert too_big.status_code == 409 and "CPU needs 300%" in too_big.json()["detail"]
    Stream.objects.filter(channel__number=1).update(status="STOPPED")
    released = admin_client.post("/api/resources/release", {"channel": "1"}, content_type="application/json")
    assert released.json() == {"channel": 1, "released": True}
    assert not ResourceAllocation.objects.exists()


@pytest.mark.parametrize("body,field", [
    ({"channel": 1, "cpu": "lots"}, "cpu"),
    ({"channel": 1, "memory_mb": "4t"}, "memory_mb"),
    ({"channel": 1}, "cpu"),
    ({"cpu": 1}, "channel"),
    ({"channel": 99, "cpu": 1}, "channel"),
    ({"channel": 1, "cpu": 1, "gpu": 1}, "gpu"),
])
def test_allocate_rejects_bad_input_with_field_errors(admin_client, body, field):
    host("enc-1")
    channel(1)
    response = admin_client.post("/api/resources/allocate", body, content_type="application/json")
    assert response.status_code == 400 and field in response.json()
    assert not ResourceAllocation.objects.exists()


def test_reconcile_fixes_drift_and_says_so():
    enc = host("enc-1")
    ended = lifecycle.start_channel(channel(1, **limits()))
    Stream.objects.filter(channel=ended).update(status="ERROR")  # its end was never recorded
    running = channel(2, **limits())
    Stream.objects.create(channel=running, host="enc-1", generation=running.generation, status="RUNNING")
    hold = channel(3, **limits())
    ResourceAllocation.objects.create(channel=hold, host=host("enc-gone", age=60), cpu_percent=10,
                                      memory_mb=10, bandwidth_mbps=1, manual=True)
    done = allocations.reconcile()
    assert sorted(done["released"]) == ["channel 1 on enc-1", "channel 3 on enc-gone"]
    assert done["reserved"] == ["channel 2 on enc-1"]
    assert list(ResourceAllocation.objects.values_list("channel__number", "host")) == [(2, enc.pk)]
    assert allocations.reconcile() == {"released": [], "reserved": []}


def test_capacity_plan_by_reservation_and_by_measurement():
    host("enc-1", cpu_percent=50.0, memory_percent=25.0)
    lifecycle.start_channel(channel(1, quality="480p"))  # 35 % CPU, 256 MB
    plan = planning.capacity_plan()
    # 165 % CPU free / 35 = 4; by measurement nothing is calibrated yet.
    assert plan["hosts"]["enc-1"]["480p"] == {"by_reservation": 4, "by_measurement": None}
    assert plan["hosts"]["enc-1"]["1080p"]["by_reservation"] == 1
    assert plan["hosts"]["enc-1"]["copy"]["by_reservation"] == 7  # slots: 8 - 1
    from resources_app.models import ProfileCost

    ProfileCost.objects.create(host="enc-1", profile="480p", cpu_percent=20, memory_mb=60)
    plan = planning.capacity_plan()
    # measured: 100 % of 200 % free -> 5 at 20 %
    assert plan["hosts"]["enc-1"]["480p"]["by_measurement"] == 5
    assert plan["totals"]["480p"] == {"by_reservation": 4, "by_measurement": 5}


def test_drain_keeps_new_channels_off_the_host():
    host("enc-1")
    host("enc-2")
    resources.drain_host("enc-1")
    for number in (1, 2):
        lifecycle.start_channel(channel(number, **limits(memory=256)))
    assert placed(1) == placed(2) == "enc-2"
    assert resources.undrain_host("enc-1")["state"] == "ONLINE"
    with pytest.raises(Exception, match="not draining"):
        resources.undrain_host("enc-1")


def test_channel_over_its_reservation_raises_an_alert():
    now = timezone.now()
    ControlLoopRun.objects.create(name="alert-evaluation", last_run_at=now)
    ControlLoopRun.objects.create(name="alert-evaluation:grace", last_run_at=now - timedelta(days=1))
    host("enc-1")
    ch = lifecycle.start_channel(channel(1, **limits(cpu=50, memory=512)))
    Stream.objects.filter(channel=ch).update(status="RUNNING",
                                             health_metrics={"cpu_percent": 80.0, "memory_mb": 100})
    assert "OVER_RESERVATION channel 1" in evaluate_alerts()["raised"]
    alert = Alert.objects.get(kind="OVER_RESERVATION")
    assert alert.message == "ffmpeg uses more than its reservation on enc-1: CPU 80% of 50% reserved"
    Stream.objects.filter(channel=ch).update(health_metrics={"cpu_percent": 30.0, "memory_mb": 100})
    assert "OVER_RESERVATION channel 1" in evaluate_alerts()["cleared"]


@pytest.mark.django_db(transaction=True)
def test_cli_status_allocate_and_errors():
    host("enc-1")
    channel(1)
    done = retrovue("resources", "allocate", "1", "--cpu", "0.5", "--memory", "512m")
    assert done.returncode == 0 and "reserved 0.5 cores, 512 MB" in done.stdout, done.stderr
    done = retrovue("resources", "status", "--json")
    assert json.loads(done.stdout)["hosts"][0]["cpu"]["reserved"] == 50
    done = retrovue("resources", "allocate", "1", "--cpu", "many")
    assert done.returncode == 2 and "not a number of cores" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = retrovue("resources", "drain", "nowhere")
    assert done.returncode == 2 and "no encode host 'nowhere'" in done.stderr


@pytest.mark.django_db(transaction=True)
def test_calibrate_measures_real_encodes_and_planning_uses_them():
    from resources_app.models import ProfileCost

    done = retrovue("resources", "calibrate", "--seconds", "1", "--profile", "480p", "--profile", "copy",
                    "--json")
    assert done.returncode == 0, done.stderr
    costs = {row["profile"]: row for row in json.loads(done.stdout)}
    assert set(costs) == {"480p", "copy"}
    # A transcode costs more CPU than a pass-through; both really ran (wait4 accounting).
    assert costs["480p"]["cpu_percent"] > costs["copy"]["cpu_percent"] > 0
    assert all(row["memory_mb"] > 5 for row in costs.values())
    saved = {c.profile: c.cpu_percent for c in ProfileCost.objects.all()}
    assert saved == {p: costs[p]["cpu_percent"] for p in costs}
    host("enc-1")
    assert planning.capacity_plan()["hosts"]["enc-1"]["480p"]["by_measurement"] is not None
    done = retrovue("resources", "calibrate", "--seconds", "500")
    assert done.returncode == 2 and "seconds" in done.stderr
