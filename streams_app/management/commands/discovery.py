"""`manage.py discovery`: answer HDHomeRun discovery and SSDP so Plex and Jellyfin find the tuner
by themselves (streams_app/discovery.py). Runs until SIGTERM or SIGINT, then says byebye."""
import signal

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from streams_app.discovery import DiscoveryServer, announce_target


class Command(BaseCommand):
    help = "Answer HDHomeRun discovery (UDP) and SSDP so media servers find the tuner with no address typed."

    def handle(self, *args, **options):
        try:
            announce = announce_target()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc), returncode=2) from None
        try:
            server = DiscoveryServer(settings.RETROVUE_DISCOVERY_BIND, settings.RETROVUE_HDHR_DISCOVER_PORT,
                                     settings.RETROVUE_SSDP_PORT, announce)
        except OSError as exc:
            raise CommandError(f"cannot listen on {settings.RETROVUE_DISCOVERY_BIND}: {exc}") from None
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: server.stop())
        listening = ", ".join(f"{name} on udp {address}" for name, address in server.listening.items())
        target = "%s:%d" % server.announce_to if server.announce_to else "nowhere (RETROVUE_SSDP_ANNOUNCE unset)"
        self.stdout.write(f"discovery: {listening}; announcing to {target}")
        self.stdout.flush()
        server.serve()
