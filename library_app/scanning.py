"""Scanning a library: its folder walked, new and changed files probed, gone ones marked.

A file is known by its size and mtime: a rescan of an unchanged library is one walk, one query
for the known assets and a few writes, so beat can rescan often. Only a new or changed file (or
one whose .nfo or artwork is newer than its last probe) is probed and described again. A file
that is gone gets `missing_since` and is never aired; one that comes back is cleared.
"""
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

from django.utils import timezone

from channels_app import media
from channels_app.models import MediaAsset
from retrovue.errors import ConfigError

from . import metadata
from .jobs import claimable
from .libraries import library_assets
from .models import Library

log = logging.getLogger("retrovue.library")
CLAIMABLE = [Library.ScanState.IDLE, Library.ScanState.QUEUED, Library.ScanState.FAILED]
PROGRESS_EVERY_S = 0.5
SIDECAR_TYPES = {".nfo", *metadata.IMAGE_TYPES}
WRITE_BATCH = 500
PROBES = os.cpu_count() or 1  # ffprobes at once in a first scan
# Written for a probed file; `source` identifies it (an upsert: another import may have raced).
ASSET_FIELDS = [f.name for f in MediaAsset._meta.concrete_fields if f.name not in ("id", "source")]


def walk(root):
    """({relative path: (size, mtime)} of the media files under root, {relative path: mtime}
    of the .nfo and image files, [{"path", "reason"}] of what was not followed). Names
    starting with a dot are skipped (macOS leaves '._name.mkv' beside media); symbolic links
    are not followed (they could lead outside the media roots or loop) but are reported."""
    files, sidecars, skipped = {}, {}, []
    folders = [root]
    while folders:
        folder = folders.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if folder == root:
                raise
            skipped.append({"path": folder, "reason": f"cannot be read: {exc.strerror}"})
            continue
        for entry in entries:
            extension = os.path.splitext(entry.name)[1].lower()
            relative = entry.path[len(root) + 1:]
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                if extension in media.MEDIA_EXTENSIONS or entry.is_dir():
                    skipped.append({"path": entry.path, "reason": "a symbolic link: not followed"})
            elif entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)
            elif extension in media.MEDIA_EXTENSIONS and entry.is_file(follow_symlinks=False):
                stat = entry.stat(follow_symlinks=False)
                files[relative] = (stat.st_size, stat.st_mtime)
            elif extension in SIDECAR_TYPES:
                sidecars[relative] = entry.stat(follow_symlinks=False).st_mtime
    return files, sidecars, skipped


def _chunks(items, size=WRITE_BATCH):
    return (items[i:i + size] for i in range(0, len(items), size))


class Scan:
    """One scan of one library (claimed by scan_library): counts, pending writes, progress."""

    def __init__(self, library, now, on_progress):
        self.library, self.now, self.on_progress = library, now, on_progress or (lambda done, total: None)
        self.root = library.path.rstrip("/")
        self.counts = {"new": 0, "changed": 0, "unchanged": 0}
        self.failed, self.warnings, self.pending, self.unplayable = [], [], [], []
        self.done, self.written_at = 0, time.monotonic()

    def run(self):
        started = time.monotonic()
        media.check_folder(self.root, "path")  # an unmounted folder must not mark everything gone
        files, self.sidecars, self.failed = walk(self.root)
        Library.objects.filter(pk=self.library.pk).update(scan_total=len(files))
        known = {row.source: row for row in library_assets(self.library).values_list(
            "source", "file_size", "file_mtime", "probed_at", "missing_since", named=True)}
        back, to_read = [], []
        for relative, (size, mtime) in sorted(files.items()):
            source = f"{self.root}/{relative}"
            row = known.get(source)
            if self._unchanged(row, relative, size, mtime):
                self.counts["unchanged"] += 1
                if row.missing_since:
                    back.append(source)
                self._step(len(files))
            else:
                to_read.append((source, relative, size, mtime, row))
        with ThreadPoolExecutor(PROBES) as pool:  # ffprobe runs outside the GIL: one per core
            for item, probed in zip(to_read, pool.map(probe, [item[0] for item in to_read])):
                self._read(*item, probed)
                self._step(len(files))
        self._write()
        gone = [source for source, row in known.items() if source[len(self.root) + 1:] not in files
                and not row.missing_since and not os.path.exists(source)]  # a hidden or linked file stays
        self._mark(back, None)
        self._mark(gone + self.unplayable, self.now)
        if gone:
            log.warning("library %s: %d files gone, not aired: %s", self.library.name, len(gone), ", ".join(gone))
        return {"found": len(files), **self.counts, "removed": len(gone), "failed": self.failed,
                "warnings": self.warnings, "seconds": round(time.monotonic() - started, 3)}

    def _unchanged(self, row, relative, size, mtime):
        """Known with this size and mtime, and no .nfo or artwork of it newer than its probe."""
        if row is None or (row.file_size, row.file_mtime) != (size, mtime):
            return False
        nfos, artwork = metadata.sidecars(relative, self.library.kind)
        probed = row.probed_at.timestamp()
        return not any(self.sidecars.get(str(path), 0) > probed for path in [n for n, _ in nfos] + artwork)

    def _step(self, total):
        self.done += 1
        self.on_progress(self.done, total)
        if time.monotonic() - self.written_at >= PROGRESS_EVERY_S:
            self._write()

    def _read(self, source, relative, size, mtime, row, probed):
        """Describe a new or changed file from its probe; one ffprobe refused is listed in
        `failed` (and, if it was playable before, kept from airing)."""
        if isinstance(probed, ConfigError):
            self.failed.append({"path": source, "reason": " ".join(probed.errors["path"])})
            if row:
                self.unplayable.append(source)
            return
        fields, tags = probed
        described, problems = metadata.describe(self.root, relative, self.library.kind, tags)
        self.warnings += problems
        self.counts["changed" if row else "new"] += 1
        self.pending.append(MediaAsset(source=source, **fields, **described, file_size=size,
                                       file_mtime=mtime, missing_since=None))

    def _write(self):
        """The probed files and the progress so far, in few statements."""
        for batch in _chunks(self.pending):
            MediaAsset.objects.bulk_create(batch, update_conflicts=True, unique_fields=["source"],
                                           update_fields=ASSET_FIELDS)
        self.pending = []
        Library.objects.filter(pk=self.library.pk).update(scan_done=self.done, scan_touched_at=timezone.now())
        self.written_at = time.monotonic()

    def _mark(self, sources, missing_since):
        for batch in _chunks(sources):
            MediaAsset.objects.filter(source__in=batch).update(missing_since=missing_since)


def probe(source):
    """(fields, tags) of a media file, or the ConfigError saying why ffprobe refused it."""
    try:
        return media.probe_media(media.check_source(source))
    except ConfigError as exc:
        return exc


def scan_library(library, now=None, on_progress=None):
    """Scan a library's folder into media assets; the summary (also kept as `last_scan`):
    {"found", "new", "changed", "unchanged", "removed", "failed": [{"path", "reason"}],
    "warnings": [{"path", "reason"}] (.nfo files not used), "seconds"}. `on_progress(done,
    total)` runs after each file. Returns None, scanning nothing, when a scan of the library is
    already under way: the claim is one compare-and-swap of its state, so two never overlap.
    An error leaves the library FAILED with the reason, and is raised."""
    now = now or timezone.now()
    claimed = Library.objects.filter(claimable(CLAIMABLE, timezone.now()), pk=library.pk).update(
        scan_state=Library.ScanState.SCANNING, scan_done=0, scan_total=0, scan_error="",
        scan_touched_at=timezone.now())
    if not claimed:
        return None
    try:
        summary = Scan(library, now, on_progress).run()
    except BaseException as exc:  # the state must not stay SCANNING, whatever stopped the scan
        Library.objects.filter(pk=library.pk).update(scan_state=Library.ScanState.FAILED,
                                                     scan_error=str(exc) or type(exc).__name__)
        library.refresh_from_db()
        raise
    Library.objects.filter(pk=library.pk).update(
        scan_state=Library.ScanState.IDLE, scan_done=summary["found"], last_scan=summary, last_scan_at=now)
    library.refresh_from_db()
    return summary
