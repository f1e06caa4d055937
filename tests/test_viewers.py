"""Viewers never starve the control plane: under uvicorn (ASGI, as compose serves the web), 64
live TS viewers of one channel hold no thread the API needs; seats cap the viewers of a channel
and of a client. The channel's HLS window is written here, as FFmpeg's hls muxer writes it."""
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from channels_app.models import Channel
from streams_app.hls import hls_dir

from .conftest import database_url
from .factories import make_channel, make_user
from .helpers import wait_for
from .test_iptv import publish

# A real uvicorn carrying 64 viewers while the API is timed: on cores of its own.
pytestmark = pytest.mark.real_time
ROOT = Path(__file__).resolve().parent.parent
VIEWERS = 64


def running_channel_with_a_window(number):
    make_channel(number)
    Channel.objects.filter(number=number).update(status=Channel.Status.RUNNING)
    folder = hls_dir(number)
    folder.mkdir(parents=True, exist_ok=True)
    publish(folder, 0, {f"index{n}.ts": bytes(188 * 1000) for n in range(3)})
    return folder


def listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), 0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def asgi_server(transactional_db):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "DATABASE_URL": database_url(settings.DATABASES["default"]),
           "RETROVUE_MAX_VIEWERS_PER_CLIENT": str(VIEWERS + 1), "RETROVUE_MAX_VIEWERS_PER_CHANNEL": str(VIEWERS)}
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "retrovue.asgi:application", "--host", "127.0.0.1",
                               "--port", str(port), "--log-level", "warning"], cwd=ROOT, env=env)
    try:
        wait_for(lambda: listening(port), timeout=20, what="uvicorn listening")
    except TimeoutError:
        server.kill()
        raise
    yield f"http://127.0.0.1:{port}"
    server.terminate()
    server.wait(timeout=10)


def open_viewer(base, number):
    """A viewer that tunes in and then reads nothing more (a slow client holds its socket)."""
    connection = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])), timeout=10)
    connection.sendall(f"GET /iptv/channels/{number}.ts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    head = connection.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head[:200]
    return connection


def test_sixty_four_viewers_leave_the_api_answering(asgi_server):
    running_channel_with_a_window(1)
    from rest_framework.authtoken.models import Token
    token = Token.objects.create(user=make_user("ops", permissions="all")).key
    viewers = [open_viewer(asgi_server, 1) for _ in range(VIEWERS)]
    try:
        for _ in range(5):
            started = time.monotonic()
            request = urllib.request.Request(f"{asgi_server}/api/health", headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200
            assert time.monotonic() - started < 1.0
        # the channel's seats are taken: one more viewer is told so, at once
        refused = urllib.request.Request(f"{asgi_server}/iptv/channels/1.ts")
        with pytest.raises(urllib.error.HTTPError) as full:
            urllib.request.urlopen(refused, timeout=5)
        assert full.value.code == 503 and full.value.headers["Retry-After"]
    finally:
        for viewer in viewers:
            viewer.close()
    # seats come back when viewers go
    wait_for(lambda: open_viewer(asgi_server, 1).close() or True, timeout=10, what="a seat freed")


@pytest.mark.django_db(transaction=True)  # the async view reads the channel from its own thread
def test_a_client_may_hold_only_so_many_streams(client, settings):
    settings.RETROVUE_MAX_VIEWERS_PER_CLIENT = 2
    running_channel_with_a_window(2)
    tune = lambda: client.get("/iptv/channels/2.ts", REMOTE_ADDR="192.0.2.7")  # noqa: E731 - one client
    held = [tune() for _ in range(2)]
    assert [r.status_code for r in held] == [200, 200]
    third = tune()
    assert third.status_code == 429 and third["Retry-After"]
    other = client.get("/iptv/channels/2.ts", REMOTE_ADDR="192.0.2.8")  # another client
    assert other.status_code == 200
    other.close()
    held[0].close()  # the viewer goes: its seat comes back
    again = tune()
    assert again.status_code == 200
    again.close()
    held[1].close()
