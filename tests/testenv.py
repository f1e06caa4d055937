"""Loaded with `-p tests.testenv` before pytest-django reads settings: the test environment.

Tests get a private redis-server on a free loopback port (so a test may stop and restart it
without touching anyone else's Redis), their own data folder (with its SQLite test database)
or, on PostgreSQL, a test database named after the session, an encode host name, and may only
send to loopback (RETROVUE_LOOPBACK_ONLY): no test can ever publish to a multicast group.
"""
import atexit
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# One folder per session (media, HLS, the SQLite test database): sessions never collide.
DATA = ROOT / "var" / "test" / str(os.getpid())
DATA.mkdir(parents=True, exist_ok=True)
(DATA / "static").mkdir(exist_ok=True)  # DEBUG is off: WhiteNoise serves from here


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A throw-away redis-server the tests own; `stop()` and `start()` simulate an outage."""

    def __init__(self, port):
        self.port, self.proc = port, None
        self.url = f"redis://127.0.0.1:{port}/0"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--loglevel", "warning"], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


REDIS = RedisServer(free_port()).start()
atexit.register(REDIS.stop)
atexit.register(shutil.rmtree, DATA, True)

# RETROVUE_TEST_BROKER=rabbitmq runs the suite (make test runs the worker and failover tests so)
# with the machine's RabbitMQ as the broker, in a virtual host of the session's own.
BROKER = os.environ.get("RETROVUE_TEST_BROKER", "redis")
if BROKER == "rabbitmq":
    VHOST = f"retrovue-test-{os.getpid()}"
    for command in (["add_vhost", VHOST], ["set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"]):
        subprocess.run(["rabbitmqctl", "-q", *command], check=True, stdout=subprocess.DEVNULL)
    atexit.register(subprocess.run, ["rabbitmqctl", "-q", "delete_vhost", VHOST], stdout=subprocess.DEVNULL)
    os.environ["CELERY_BROKER_URL"] = f"amqp://guest:guest@127.0.0.1:5672/{VHOST}"
elif BROKER == "redis":
    os.environ.pop("CELERY_BROKER_URL", None)  # the private Redis below (REDIS_URL)
else:
    raise RuntimeError(f"RETROVUE_TEST_BROKER is {BROKER!r}: use redis or rabbitmq")

os.environ.update({
    "RETROVUE_DATA_DIR": str(DATA),
    "RETROVUE_MEDIA_ROOTS": str(DATA / "media"),
    "RETROVUE_HOST": "test-a",
    "RETROVUE_TEST_DATABASE_NAME": f"test_retrovue_{os.getpid()}",
    "RETROVUE_LOOPBACK_ONLY": "1",
    "RETROVUE_HEARTBEAT_SECONDS": "0.5",
    "RETROVUE_LEASE_TTL_SECONDS": "3",
    "RETROVUE_METRICS_SAMPLE_SECONDS": "1",
    "REDIS_URL": REDIS.url,
})
# Tests run as deployed, DEBUG off, which needs a real secret key: one per session.
os.environ.setdefault("DJANGO_SECRET_KEY", secrets.token_urlsafe(50))
