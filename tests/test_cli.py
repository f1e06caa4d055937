"""The `retrovue` console script and manage.py commands: real processes on the test database."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from django.conf import settings

from channels_app.models import Channel

from .conftest import database_url, wait_status

BIN = os.path.dirname(sys.executable)


def retrovue(*args):
    env = {**os.environ, "DATABASE_URL": database_url(settings.DATABASES["default"])}
    exe = shutil.which("retrovue", path=BIN)
    argv = [exe, *args] if exe else [sys.executable, "manage.py", *args]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=settings.BASE_DIR, timeout=60)


def test_console_script_is_installed():
    assert shutil.which("retrovue", path=BIN), "pip install -e . provides the retrovue script"


@pytest.mark.django_db(transaction=True)
def test_create_list_status_json():
    done = retrovue("channel", "create", "Channel 1", "--number", "1", "--quality", "1080p",
                    "--output", "udp://127.0.0.1:5001")
    assert done.returncode == 0, done.stderr
    config = Channel.objects.get(number=1).config
    assert config.stream_settings["resolution"] == "1920x1080"
    assert config.network_settings == {"protocol": "udp", "multicast_address": "127.0.0.1", "port": 5001}
    listed = json.loads(retrovue("channel", "list", "--json").stdout)
    assert [(c["number"], c["status"]) for c in listed] == [(1, "STOPPED")]
    status = json.loads(retrovue("channel", "status", "1", "--json").stdout)
    assert status["name"] == "Channel 1" and status["outputs"]["udp"] == "udp://127.0.0.1:5001"
    health = json.loads(retrovue("stream", "health", "1", "--json").stdout)
    assert health["verdict"] == "STOPPED"
    assert "Channel 1" in retrovue("channel", "list").stdout


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("args,fragment", [
    (["channel", "create", "X", "--number", "2", "--output", "udp://127.0.0.1:99999"], "outside 1..65535"),
    (["channel", "create", "X", "--number", "2", "--output", "udp://not-an-ip:5000"], "output"),
    (["channel", "create", "X", "--number", "2", "--playlist", "/etc/passwd"], "outside the media roots"),
    (["channel", "create", "X", "--number", "0"], "number"),
    (["channel", "status", "404"], "no channel '404'"),
    (["stream", "metrics", "nope"], "no channel 'nope'"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(args, fragment):
    done = retrovue(*args)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], done.stderr
    assert not Channel.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_cli_start_and_stop_a_channel(live_host, media, free_port):
    retrovue("channel", "create", "CLI", "--number", "3", "--quality", "copy",
             "--output", f"udp://127.0.0.1:{free_port}", "--playlist", str(media["clip"]))
    assert retrovue("channel", "start", "3").returncode == 0
    wait_status(3, "RUNNING")
    metrics = json.loads(retrovue("stream", "metrics", "3", "--json").stdout)
    assert metrics["host"] == live_host.host
    assert retrovue("channel", "stop", "3").returncode == 0
    wait_status(3, "STOPPED")


@pytest.mark.django_db(transaction=True)
def test_configure_says_what_airs_live_and_refuses_bad_input_in_one_line(media):
    assert retrovue("channel", "create", "Five", "--number", "5").returncode == 0
    done = retrovue("channel", "configure", "5", "--playlist", str(media["clip"]), "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    # stopped: nothing waits for a restart; the playlist is the kind of change that airs live
    assert data["restart_required"] is False and data["applied_live"] == ["playlist"]
    assert data["playlist"] == [str(media["clip"])]
    bad = retrovue("channel", "configure", "5", "--playlist", "/etc/passwd")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "outside the media roots" in bad.stderr
    assert Channel.objects.get(number=5).playlist == [str(media["clip"])]  # nothing half-written
