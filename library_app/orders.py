"""Playback orders: which item of a collection airs next, worked out from what aired before.

A stream is one collection played in one order; its key ("c12:chronological") is stored in each
program it places (Program.origin). Builds keep nothing else: a rebuild continues from the kept
programs (and ChannelProgramming.progress for streams whose programs were pruned), so the same
programs, rules and seed always give the same next item.

- chronological: the item after the last one placed (the collection's order, round again after
  the last); if that item has left the collection, the first one after it in natural order.
- shuffle: each occurrence (a block's, or the default's within one local day) deals the
  collection in an order drawn from (seed, stream, occurrence); once all have aired it deals again.
- shuffle_in_order: the same deal over the shows (everything that is not an episode counts as one
  show), each show airing its next episode in order.
- random: the k-th item of an occurrence is drawn from (seed, stream, occurrence, k) among the
  items not among the stream's last `no_repeat` ones.
Only chronological waits when its next item does not fit the time left: the others air the
first item of their deal (or draw) that fits.
Filler is taken in turn from an order drawn once from (seed, role), skipping items within their
cooldown.
"""
import random
from bisect import bisect_left
from collections import deque

from .queries import natural_key
from .rules import no_repeat


def stream_key(spec):
    return f"c{spec['collection']}:{spec['order']}"


def progress_key(key, group):
    """Where ChannelProgramming.progress keeps a stream's last item (per show for
    shuffle_in_order)."""
    return f"{key}|{group}" if group else key


def drawn(items, seed_text):
    """The items in an order drawn from `seed_text` (the same text, the same order), one at a
    time: taking the first few of a large collection costs little more than a copy."""
    rng, pool = random.Random(seed_text), list(items)
    for end in range(len(pool), 0, -1):
        index = rng.randrange(end)
        pool[index], pool[end - 1] = pool[end - 1], pool[index]
        yield pool[end - 1]


class Stream:
    """One collection in one order: `next(occurrence, fits)` names the first item due that
    `fits` accepts, without taking it; `placed(start, asset)` records one taken."""

    def __init__(self, key, spec, assets, seed, placed, progress):
        """`placed`: [(start, asset)] of this stream's earlier programs, in time order;
        `progress`: {progress key: asset} for streams whose programs were pruned."""
        self.key, self.order, self.assets, self.seed = key, spec["order"], assets, seed
        self.by_show = self.order == "shuffle_in_order"
        self.groups = {}
        for asset in assets:
            self.groups.setdefault(self.group_of(asset), []).append(asset)
        self.positions = {group: {a.pk: i for i, a in enumerate(items)} for group, items in self.groups.items()}
        self.last = {group: progress[progress_key(key, group)] for group in self.groups
                     if progress_key(key, group) in progress}
        self.starts, self.history = [], []
        self.recent = deque(maxlen=no_repeat(spec, len(assets)) if assets else 0)
        self.dealt = {}
        self.shortest = min((a.duration_s for a in assets), default=0.0)
        for start, asset in placed:
            self.placed(start, asset)

    def group_of(self, asset):
        return asset.show if self.by_show else ""

    def placed(self, start, asset):
        self.starts.append(start)
        self.history.append(asset)
        self.last[self.group_of(asset)] = asset
        self.recent.append(asset.pk)

    def since(self, moment):
        """The items placed from `moment` on."""
        return self.history[bisect_left(self.starts, moment):]

    def next(self, occurrence, fits=None):
        """The first item due in the occurrence that began at `occurrence` that `fits` accepts
        (by duration; chronological offers only its next item), or None."""
        if fits is not None and not fits(self.shortest):
            return None
        return next((a for a in self.candidates(occurrence) if fits is None or fits(a.duration_s)), None)

    def candidates(self, occurrence):
        """The items that may air next, preferred first (lazily)."""
        if not self.assets:
            return iter(())
        if self.order == "chronological":
            return iter([self.successor("")])
        done = self.since(occurrence)
        if self.order == "random":
            recent = set(self.recent) if len(self.recent) < len(self.assets) else set()
            return (a for a in self.drawn(self.assets, f"{occurrence.isoformat()}|{len(done)}") if a.pk not in recent)
        pool = list(self.groups) if self.by_show else self.assets
        cycle, turn = divmod(len(done), len(pool))
        this_cycle = {self.group_of(a) if self.by_show else a.pk for a in done[len(done) - turn:]} if turn else set()
        if (occurrence, cycle) not in self.dealt:
            self.dealt[occurrence, cycle] = list(self.drawn(pool, f"{occurrence.isoformat()}|{cycle}"))
        if self.by_show:
            return (self.successor(group) for group in self.dealt[occurrence, cycle] if group not in this_cycle)
        return (a for a in self.dealt[occurrence, cycle] if a.pk not in this_cycle)

    def drawn(self, items, draw):
        return drawn(items, f"{self.seed}|{self.key}|{draw}")

    def successor(self, group):
        """The group's item after the last one placed."""
        items, last = self.groups[group], self.last.get(group)
        if last is None:
            return items[0]
        if last.pk in self.positions[group]:
            return items[(self.positions[group][last.pk] + 1) % len(items)]
        after = natural_key(last)
        return next((a for a in items if natural_key(a) > after), items[0])


class FillerPool:
    """Filler of one role (pad, pre-roll, post-roll, mid-roll), taken in turn; an item is not
    taken again within `cooldown` of its last start (`last_starts` is shared by every role)."""

    def __init__(self, role, assets, seed, cooldown, last_starts, last_taken=None):
        self.items = list(drawn(assets, f"{seed}|{role}"))
        self.cooldown, self.last_starts = cooldown, last_starts
        order = [a.pk for a in self.items]
        self.turn = order.index(last_taken) + 1 if last_taken in order else 0

    def take(self, at, fits=None):
        """The next item in turn out of cooldown at `at` (and, given `fits`, whose duration it
        accepts), or None."""
        count = len(self.items)
        for step in range(count):
            asset = self.items[(self.turn + step) % count]
            previous = self.last_starts.get(asset.pk)
            if previous is not None and at - previous < self.cooldown:
                continue
            if fits is not None and not fits(asset.duration_s):
                continue
            self.turn = (self.turn + step + 1) % count
            self.last_starts[asset.pk] = at
            return asset
        return None
