"""The window in which a run may publish: its lease as its own host sees it.

Why: a host that freezes (a stopped worker, a paused VM) cannot stop its own output, and the
sweep elsewhere re-places its channel once the lease is a TTL old. Fencing needs no
cooperation from the frozen process because the output stage is fed by it: while it is frozen
nothing is written and the output stage starves. What remains is the moment it resumes: the
pacer writes nothing once the lease is past `until`, which is set from the start of the last
renewal attempt and ends `RETROVUE_FENCE_MARGIN_SECONDS` before the sweep can act, time for the
output stage to send what it was already given. Writes never come after the replacement starts.
"""
import math

from django.conf import settings


class Lease:
    def __init__(self, until=math.inf):
        self.until = until  # monotonic seconds
        self.last_admitted = None  # when the publisher was last let write

    @staticmethod
    def hold():
        return settings.RETROVUE_LEASE_TTL_SECONDS - settings.RETROVUE_FENCE_MARGIN_SECONDS

    def holds(self, now):
        return now < self.until

    def admits(self, now):
        """The publisher's check before it writes: True while the lease holds."""
        if now < self.until:
            self.last_admitted = now
            return True
        return False

    def renewed(self, attempted_at):
        """A renewal that began at `attempted_at` was confirmed by the database."""
        self.until = max(self.until, attempted_at + self.hold())

    def kept(self, attempted_at):
        """A renewal that began at `attempted_at` could not reach the database: nobody can
        re-place the channel while it is away (the sweep gives every lease a TTL of grace when it
        returns), so the lease goes on, but only if it never lapsed: a host that was frozen
        must hear from the database before it publishes again."""
        if self.holds(attempted_at):
            self.renewed(attempted_at)
