"""The product design's configuration block as system defaults: accepted verbatim, each key taking
effect, bad input refused by dotted path with nothing written, through the API, CLI and admin."""
import json
import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from channels_app import system_config
from channels_app.models import ChannelConfig, SystemConfig
from resources_app.models import EncodeHost, ResourceAllocation
from resources_app.placement import choose_host
from resources_app.requirements import channel_need
from streams_app import lifecycle
from streams_app.alerts import evaluate_alerts
from streams_app.models import Alert, Stream
from streams_app.signals import ensure_beat_schedule

from .factories import channel_payload, make_channel, make_user, token_client

pytestmark = pytest.mark.django_db
DESIGN = {"max_channels": 50,
          "resource_allocation": {"strategy": "spread", "cpu_per_channel": 100, "memory_per_channel": 2048},
          "failover_settings": {"auto_restart": True, "max_restart_attempts": 3, "restart_delay_seconds": 5},
          "monitoring": {"health_check_interval": 30,
                         "alert_thresholds": {"cpu_usage": 80, "memory_usage": 85, "error_rate": 5}}}


@pytest.fixture
def operator():
    return token_client(make_user("operator", permissions="all"))


def host(name, **fields):
    return EncodeHost.objects.create(name=name, last_heartbeat=timezone.now(), cpu_count=4, memory_mb=8192,
                                     **fields)


def test_the_design_block_is_accepted_verbatim_and_read_back(operator):
    assert operator.put("/api/config", DESIGN, format="json").status_code == 200
    answer = operator.get("/api/config").json()
    assert answer == {**DESIGN, "from_environment": []}
    assert operator.put("/api/config", answer, format="json").status_code == 200  # GET -> PUT round-trips


def test_aliases_are_stored_in_the_canonical_spelling_and_unset_keys_come_from_the_environment(operator):
    block = {"failover_settings": {"restart_delay": 7},
             "monitoring": {"alert_thresholds": {"cpu_percent": 70, "memory_percent": 75}}}
    answer = operator.put("/api/config", block, format="json").json()
    assert answer["failover_settings"]["restart_delay_seconds"] == 7
    assert answer["monitoring"]["alert_thresholds"] == {"cpu_usage": 70, "memory_usage": 75,
                                                        "error_rate": settings.RETROVUE_ALERT_ERROR_RATE}
    assert "max_channels" in answer["from_environment"]
    assert "failover_settings.restart_delay_seconds" not in answer["from_environment"]
    patched = operator.patch("/api/config", {"failover_settings": None, "max_channels": 4}, format="json").json()
    assert patched["failover_settings"] == settings.RETROVUE_FAILOVER_DEFAULTS and patched["max_channels"] == 4
    assert patched["monitoring"]["alert_thresholds"]["cpu_usage"] == 70  # PATCH left the rest


@pytest.mark.parametrize("method", ["put", "patch"])
def test_bad_input_is_a_400_by_dotted_path_and_nothing_is_written(operator, method):
    operator.put("/api/config", DESIGN, format="json")
    bad = {"max_channels": -1, "colour": "red",
           "resource_allocation": {"strategy": "random", "cpu_per_channel": "lots"},
           "failover_settings": {"restart_delay": 5, "restart_delay_seconds": 5, "auto_restart": "yes"},
           "monitoring": {"health_check_interval": 2.5, "alert_thresholds": {"cpu_usage": 0, "disk": 90}}}
    response = getattr(operator, method)("/api/config", bad, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {
        "max_channels", "colour", "resource_allocation.strategy", "resource_allocation.cpu_per_channel",
        "failover_settings.restart_delay_seconds", "failover_settings.auto_restart",
        "monitoring.health_check_interval", "monitoring.alert_thresholds.cpu_usage",
        "monitoring.alert_thresholds.disk"}
    assert operator.put("/api/config", [1], format="json").status_code == 400
    assert operator.get("/api/config").json() == {**DESIGN, "from_environment": []}


def test_viewers_read_and_only_changers_write():
    viewer = token_client(make_user("viewer", permissions="view"))
    assert viewer.get("/api/config").status_code == 200
    assert viewer.put("/api/config", DESIGN, format="json").status_code == 403
    assert not SystemConfig.objects.exists()


def test_max_channels_refuses_a_start_past_it_with_409_and_nothing_committed(operator):
    host("enc-1")
    system_config.update({"max_channels": 1})
    lifecycle.start_channel(make_channel(1, port=5001))
    second = make_channel(2, port=5002)
    response = operator.post("/api/channels/2/start")
    assert response.status_code == 409
    assert "max_channels is 1" in response.json()["detail"]
    assert response.json()["shortfall"] == {"system": ["channels 1/1 (max_channels)"]}
    second.refresh_from_db()
    assert second.status == "STOPPED" and second.generation == 0
    assert not Stream.objects.filter(channel=second).exists()
    assert ResourceAllocation.objects.count() == 1


def test_the_strategy_is_what_placement_uses():
    busy, idle = host("enc-busy"), host("enc-idle")
    ResourceAllocation.objects.create(channel=make_channel(1, port=5001), host=busy, cpu_percent=100,
                                      memory_mb=512, bandwidth_mbps=5)
    newcomer = make_channel(2, port=5002)
    assert choose_host(newcomer) == idle  # spread, the environment's default
    system_config.update({"resource_allocation": {"strategy": "pack"}})
    assert choose_host(newcomer) == busy


def test_per_channel_defaults_fill_a_channel_that_sets_no_limits(operator):
    system_config.update({"resource_allocation": {"cpu_per_channel": 100, "memory_per_channel": 1024}})
    created = operator.post("/api/channels", channel_payload(3, port=5003), format="json")
    assert created.status_code == 201, created.content
    limits = ChannelConfig.objects.get(channel__number=3).resource_limits
    assert limits["max_cpu_percent"] == 100 and limits["max_memory_mb"] == 1024
    ChannelConfig.objects.filter(channel__number=3).update(resource_limits={})
    need = channel_need(ChannelConfig.objects.get(channel__number=3).channel)
    assert (need.cpu_percent, need.memory_mb) == (100, 1024)


def test_failover_defaults_are_the_channels_policy_unless_it_sets_its_own():
    channel = make_channel(4, port=5004)
    ChannelConfig.objects.filter(channel=channel).update(failover_settings={"max_restart_attempts": 9})
    system_config.update({"failover_settings": DESIGN["failover_settings"]})
    assert ChannelConfig.objects.get(channel=channel).failover() == {
        "auto_restart": True, "max_restart_attempts": 9, "restart_delay_seconds": 5}


def test_the_health_check_interval_moves_beats_health_checks_but_not_the_lease_sweep():
    from django.apps import apps

    ensure_beat_schedule(apps.get_app_config("streams_app"))
    system_config.update({"monitoring": {"health_check_interval": 45}})
    every = dict(PeriodicTask.objects.filter(name__startswith="retrovue:").values_list("task", "interval__every"))
    assert every["streams.evaluate_alerts"] == every["streams.evaluate_trends"] == 45
    assert every["streams.sweep_leases"] == settings.RETROVUE_LEASE_SWEEP_SECONDS


def test_alert_thresholds_are_what_evaluate_alerts_judges_by():
    host("enc-1", cpu_percent=70)
    assert evaluate_alerts()["raised"] == []
    system_config.update({"monitoring": {"alert_thresholds": {"cpu_percent": 60}}})
    assert evaluate_alerts()["raised"] == ["CPU host enc-1"]
    assert Alert.objects.get(kind="CPU", host="enc-1").threshold == 60


def test_settings_load_with_the_designs_interval_and_refuse_a_slow_lease_sweep():
    code = ("import django; django.setup(); from django.conf import settings as s; "
            "print(s.RETROVUE_HEALTH_CHECK_INTERVAL, s.RETROVUE_LEASE_SWEEP_SECONDS)")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "retrovue.settings", "DJANGO_DEBUG": "1",
           "RETROVUE_HEALTH_CHECK_INTERVAL": "30"}
    loaded = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert loaded.returncode == 0, loaded.stderr
    assert loaded.stdout.split() == ["30", "1"]
    slow = subprocess.run([sys.executable, "-c", code], env={**env, "RETROVUE_LEASE_SWEEP_SECONDS": "5"},
                          capture_output=True, text=True, timeout=60)
    assert slow.returncode != 0 and "RETROVUE_LEASE_SWEEP_SECONDS must be" in slow.stderr


def test_cli_show_and_load_json_and_yaml_and_bad_files_exit_2(tmp_path, capsys):
    design = tmp_path / "design.json"
    design.write_text(json.dumps(DESIGN))
    call_command("config", "load", str(design))
    assert capsys.readouterr().out.startswith("stored:\nmax_channels = 50  (stored)")
    call_command("config", "show", "--json")
    assert json.loads(capsys.readouterr().out) == {**DESIGN, "from_environment": []}
    call_command("config", "show")
    assert "monitoring.health_check_interval = 30  (stored)" in capsys.readouterr().out
    yaml_file = tmp_path / "partial.yaml"
    yaml_file.write_text("max_channels: 12\nmonitoring:\n  health_check_interval: 20\n")
    call_command("config", "load", str(yaml_file))
    assert system_config.system_config()["max_channels"] == 12
    for name, text in (("broken.json", "{max_channels: [1,"), ("unknown.json", '{"max_chanels": 5}'),
                       ("range.json", '{"monitoring": {"health_check_interval": 0}}')):
        (tmp_path / name).write_text(text)
        with pytest.raises(CommandError) as refused:
            call_command("config", "load", str(tmp_path / name))
        assert refused.value.returncode == 2 and "\n" not in str(refused.value)
    with pytest.raises(CommandError) as missing:
        call_command("config", "load", str(tmp_path / "absent.json"))
    assert missing.value.returncode == 2
    assert system_config.system_config()["max_channels"] == 12  # nothing written by the bad ones


def test_the_admin_edits_the_singleton_through_the_same_validation(admin_client):
    listing = admin_client.get("/admin/channels_app/systemconfig/")
    assert listing.status_code == 302
    page = listing["Location"]
    bad = admin_client.post(page, {"values": json.dumps({"monitoring": {"health_check_interval": "soon"}})})
    assert bad.status_code == 200 and "monitoring.health_check_interval: must be a whole number" in bad.content.decode()
    assert SystemConfig.objects.get().values == {}
    saved = admin_client.post(page, {"values": json.dumps(DESIGN)})
    assert saved.status_code == 302
    assert system_config.describe() == {**DESIGN, "from_environment": []}
    assert "health_check_interval" in admin_client.get(page).content.decode()


def test_a_gave_up_channel_shows_its_end_state_in_the_api(operator):
    channel = make_channel(5, port=5005)
    reason = "gave up after 3 restart attempts: ffmpeg exited with code 1: Conversion failed!"
    type(channel).objects.filter(pk=channel.pk).update(status="ERROR", desired_state="RUNNING", status_reason=reason)
    Stream.objects.create(channel=channel, host="enc-1", generation=0, status="ERROR",
                          ended_at=timezone.now() - timedelta(hours=1))
    assert operator.get("/api/channels/5").json()["status_reason"] == reason
    assert lifecycle.restart_failed_channels(only_due=True) == {}
