"""The one playout engine (engine.py) with its two modes (transcode.py, copy.py), the argv
builders (argv.py) and the database timeline it airs (feed.py). `start` is the way in."""
from .asrun import AsRunLog
from .copy import CopyMode
from .engine import Pacer
from .feed import ChannelFeed
from .transcode import TranscodeMode


def start(plan, channel_id, spawn, run_id=None, host="", **pacer_options):
    """Spawn a run's output stage with `spawn(argv, pass_fds=())` and start feeding it the
    channel's timeline, logging what airs for the run `run_id` on `host`; returns (what `spawn`
    returned, the running pacer)."""
    feed = ChannelFeed(channel_id)
    mode = (CopyMode if plan.copy else TranscodeMode)(plan, has_audio=feed.has_audio)
    run = mode.spawn_output(spawn)
    pacer = Pacer(mode, feed, asrun=AsRunLog(channel_id, run_id, host), **pacer_options)
    pacer.start()
    return run, pacer
