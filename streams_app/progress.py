"""Parse FFmpeg's `-progress` output: key=value lines, one block per stats period."""

NUMERIC = {"frame": int, "dup_frames": int, "drop_frames": int, "total_size": int, "out_time_us": int}


def parse_value(key, raw):
    raw = raw.strip()
    if raw in ("N/A", ""):
        return None
    try:
        if key in NUMERIC:
            return NUMERIC[key](raw)
        if key == "fps":
            return float(raw)
        if key == "speed":
            return float(raw.rstrip("x"))
        if key == "bitrate":
            return float(raw.replace("kbits/s", ""))
    except ValueError:
        return None
    return raw


class ProgressParser:
    """Feed lines; `feed` returns a finished block (dict) when a `progress=` line closes one."""

    KEEP = ("frame", "fps", "bitrate", "total_size", "out_time_us", "dup_frames", "drop_frames",
            "speed", "progress")

    def __init__(self):
        self._block = {}

    def feed(self, line):
        key, sep, raw = line.partition("=")
        if not sep:
            return None
        key = key.strip()
        if key in self.KEEP:
            self._block[key] = parse_value(key, raw)
        if key != "progress":
            return None
        block, self._block = self._block, {}
        return {
            "frame": block.get("frame"),
            "fps": block.get("fps"),
            "bitrate_kbps": block.get("bitrate"),
            "total_size": block.get("total_size"),
            "out_time_s": None if block.get("out_time_us") is None else block["out_time_us"] / 1e6,
            "dup_frames": block.get("dup_frames"),
            "drop_frames": block.get("drop_frames"),
            "speed": block.get("speed"),
            "progress": block.get("progress"),
        }
