"""`retrovue worker --host NAME`: the Celery worker of one encode host.

It consumes its own queue (encode.NAME) and the shared control queue with a threads pool whose
size is the host's channel capacity: a supervised channel costs a thread, not a process.
"""
import os
import sys

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from channels_app.hostnames import validate_host_label, validate_host_name


class Command(BaseCommand):
    help = "Run the encode worker for one host (queues encode.<host> and control)."

    def add_arguments(self, parser):
        parser.add_argument("--host", default=settings.RETROVUE_HOST, help="encode host name")
        parser.add_argument("--capacity", type=int, default=settings.RETROVUE_HOST_CAPACITY,
                            help="channel slots (worker threads): the host's max_channels")
        parser.add_argument("--bandwidth", type=float, default=settings.RETROVUE_HOST_BANDWIDTH_MBPS,
                            help="network bandwidth reservations may use, Mbit/s")
        parser.add_argument("--label", action="append", dest="labels",
                            default=list(settings.RETROVUE_HOST_LABELS),
                            help="what this host offers, e.g. nvenc (repeatable)")
        parser.add_argument("--loglevel", default="INFO")

    def handle(self, *args, host, capacity, bandwidth, labels, loglevel, **options):
        try:
            host = validate_host_name(host)
            labels = [validate_host_label(label) for label in labels]
        except ValueError as exc:
            raise CommandError(str(exc), returncode=2) from None
        if not 1 <= capacity <= 256:
            raise CommandError("--capacity must be within 1..256", returncode=2)
        if not 0 < bandwidth <= 100_000:
            raise CommandError("--bandwidth must be within 0..100000 Mbit/s", returncode=2)
        env = {**os.environ, "RETROVUE_HOST": host, "RETROVUE_HOST_CAPACITY": str(capacity),
               "RETROVUE_HOST_BANDWIDTH_MBPS": str(bandwidth), "RETROVUE_HOST_LABELS": ",".join(labels)}
        argv = [sys.executable, "-m", "celery", "-A", "retrovue", "worker",
                "--pool", "threads", "--concurrency", str(capacity),
                "--queues", f"encode.{host},control", "--hostname", f"{host}@%h",
                "--without-gossip", "--without-mingle", "--loglevel", loglevel]
        os.execve(sys.executable, argv, env)
