"""Each channel's rolling HLS window on disk: where it lives, how a new output stage numbers
it, which of it players may see (viewers.py serves it at /hls/<number>/)."""
import math
import re

from django.conf import settings

from .playout.argv import HLS_SEGMENT_SECONDS


HLS_FILE = re.compile(r"^[A-Za-z0-9_-]{1,64}\.(m3u8|ts)$")


def channel_dir(number):
    """Where a channel's runtime files live (playlist, slate text, the HLS window)."""
    return settings.RETROVUE_DATA_DIR / "channels" / str(number)


def hls_dir(number):
    return channel_dir(number) / "hls"


PACKET = 188
PREVIOUS = "previous.m3u8"  # the window as it was when the output stage restarted
STARTS = "starts"  # the media sequence number each output stage began at, one a line
STALE_SEGMENTS = 3  # no new segment for this many segment durations: the leg is failing


def window(folder, name="index.m3u8"):
    """(media sequence, [(its tags and EXTINF line, segment name, size or None if gone)], header
    lines) of the playlist FFmpeg writes (or the run's before, PREVIOUS), or None when it is
    missing or not a playlist (its write failed). A segment's tags (a discontinuity) travel with it."""
    try:
        lines = (folder / name).read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or lines[0] != "#EXTM3U":
        return None
    header, entries, tags = [], [], []
    for line in lines:
        if HLS_FILE.match(line) and tags and tags[-1].startswith("#EXTINF:"):
            try:
                size = (folder / line).stat().st_size
            except OSError:
                size = None
            entries.append(("\n".join(tags), line, size))
            tags = []
        elif line.startswith("#EXTINF:") or line == "#EXT-X-DISCONTINUITY" or (entries and line.startswith("#")):
            tags.append(line)
        elif line.startswith("#") and line != "#EXT-X-ENDLIST":
            header.append(line)
    sequence = next((int(line.partition(":")[2]) for line in header if line.startswith("#EXT-X-MEDIA-SEQUENCE:")), 0)
    return sequence, entries, header


def next_sequence(found):
    """The media sequence number after the newest segment a `window` lists (0 without one)."""
    return found[0] + len(found[1]) if found else 0


def begin_output(folder, reached, fresh):
    """Where a new output stage's segments are numbered from: after all this folder's window
    listed and `reached` (as far as the channel got on any host), so a name is never used twice.
    A fresh run clears the old window (it would air stale). A restart keeps it as PREVIOUS,
    which the served window continues (FFmpeg's own append_list renumbers what it appends to),
    and drops segments older than two windows. Each start is noted: the discontinuity sequence
    counts those gone from the window."""
    folder.mkdir(parents=True, exist_ok=True)
    start = max(next_sequence(window(folder)), reached)
    served = None if fresh else served_window(folder)
    for old in [folder / "index.m3u8", folder / PREVIOUS, *folder.glob("*.ts")]:
        number = old.stem.removeprefix("index")
        if fresh or old.suffix != ".ts" or not number.isdigit() or \
                int(number) < start - 2 * settings.RETROVUE_HLS_LIST_SIZE:
            old.unlink(missing_ok=True)
    if served:
        (folder / PREVIOUS).write_text(playlist_text(folder, served, live=True))
    with open(folder / STARTS, "a") as starts:
        starts.write(f"{start}\n")
    return start


def output_starts(folder):
    """The media sequence number each output stage in this folder began at, oldest first."""
    try:
        return [int(line) for line in (folder / STARTS).read_text().split()]
    except (OSError, ValueError):
        return []


def discontinuity_sequence(folder, sequence):
    """Discontinuities (output starts) before segment `sequence`: gone from the window."""
    return sum(start < sequence for start in output_starts(folder))


def whole(size):
    """A segment written out: some TS packets, none cut (a failed write leaves 0 or a partial block)."""
    return bool(size) and size % PACKET == 0


def served_window(folder):
    """What players may see: the segments up to the first empty or truncated one (a write
    that failed, e.g. a full disk), leading ones (and ones rotated out) dropped with the media
    sequence advanced, as the window slides anyway. (media sequence, entries, header), or None
    with nothing whole."""
    found, previous = window(folder), window(folder, PREVIOUS)
    if previous and (found is None or previous[0] + len(previous[1]) == found[0]):
        found = (previous[0], previous[1] + (found[1] if found else []), found[2] if found else previous[2])
    if found is None:
        return None
    sequence, entries, header = found
    gone = max(0, len(entries) - settings.RETROVUE_HLS_LIST_SIZE)
    entries, sequence = entries[gone:], sequence + gone
    while entries and not whole(entries[0][2]):
        entries, sequence = entries[1:], sequence + 1
    cut = next((i for i, (_, _, size) in enumerate(entries) if size is not None and not whole(size)), len(entries))
    return (sequence, entries[:cut], header) if cut else None


def leg_problem(found, folder, running_for, now):
    """Why the HLS leg (its `window` `found` in `folder`) is failing, or None: its playlist is
    missing or unreadable, its newest segment is empty or truncated, or no segment came for
    STALE_SEGMENTS durations. FFmpeg says nothing when its HLS writes fail (a full disk): only
    its output tells."""
    grace = STALE_SEGMENTS * HLS_SEGMENT_SECONDS
    if found is None or not found[1]:
        return None if running_for < grace else "no HLS playlist"
    name, size = found[1][-1][1:]
    if not whole(size):
        return f"segment {name} is {'empty' if not size else f'truncated ({size} bytes)'}"
    try:
        age = now - (folder / name).stat().st_mtime
    except OSError:
        return None  # rotated out meanwhile: a newer one exists
    if age > grace and running_for > grace:
        return f"no new HLS segment for {age:.0f}s"
    return None


def output_bitrate_kbps(found, segments=3):
    """The channel's output bitrate over the newest finished HLS segments of a `window` (bytes
    over #EXTINF seconds): FFmpeg's -progress reports no bitrate for a tee output, and the TS
    muxed into each segment is what leaves on UDP too. None until a segment exists."""
    newest = [(extinf_seconds(tags), size) for tags, _, size in (found[1] if found else [])[-segments:]
              if size is not None]
    seconds = sum(duration for duration, _ in newest)
    return round(sum(size for _, size in newest) * 8 / seconds / 1000, 1) if seconds else None


def extinf_seconds(tags):
    return float(tags.rpartition("#EXTINF:")[2].split(",")[0])


def playlist_text(folder, served, live):
    """The served window as a playlist: its discontinuity sequence (RFC 8216 6.2.2) and, for a
    channel that is not running, the end tag (a stale window is not live)."""
    sequence, entries, header = served
    lines = []
    longest = max(extinf_seconds(tags) for tags, _, _ in entries)
    for line in header:
        if line.startswith("#EXT-X-TARGETDURATION:"):
            line = f"#EXT-X-TARGETDURATION:{max(int(line.split(':')[1]), math.ceil(longest))}"
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            line = f"#EXT-X-MEDIA-SEQUENCE:{sequence}\n" \
                   f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence(folder, sequence)}"
        lines.append(line)
    lines += [line for tags, name, _ in entries for line in (tags, name)]
    return "\n".join(lines + ([] if live else ["#EXT-X-ENDLIST"])) + "\n"
