"""`retrovue library add|list|show|scan|delete`: media libraries from the command line."""
import sys

from tqdm import tqdm

from library_app import jobs, libraries, scanning
from library_app.api import get_library
from library_app.models import Library
from retrovue.commands import ServiceCommand


def _ref(parser):
    parser.add_argument("library", help="library id or name")


def _add_args(parser):
    parser.add_argument("name")
    parser.add_argument("path", help="a folder under RETROVUE_MEDIA_ROOTS")
    parser.add_argument("--kind", default="other", help="shows, movies or other (how file names are read)")
    parser.add_argument("--queue", action="store_true", help="hand the first scan to a worker instead of "
                                                             "scanning here")


def _scan_args(parser):
    _ref(parser)
    parser.add_argument("--queue", action="store_true", help="hand the scan to a worker instead of scanning here")


def row(data):
    last = data["last_scan"] or {}
    return (f"{data['id']:>4}  {data['name'][:20]:<20}  {data['kind']:<6}  {data['scan_state']:<8}  "
            f"{data['assets']:>6}  {last.get('seconds', 0):>7.1f}s  {data['path']}")


class Command(ServiceCommand):
    help = "Add, scan and list media libraries (folders whose files are probed and read for metadata)."
    subcommands = {
        "add": ("add a library and scan it", _add_args),
        "list": ("list libraries", None),
        "show": ("one library with its last scan", _ref),
        "scan": ("rescan a library: only new and changed files are probed", _scan_args),
        "delete": ("forget a library (its assets stay)", _ref),
    }

    def scan(self, library, queue, json):
        if queue:
            library = jobs.queue_scan(library)
        else:
            with tqdm(unit="file", file=sys.stderr, disable=None) as bar:
                def progress(done, total):
                    bar.total = total
                    bar.update(done - bar.n)
                scanning.scan_library(library, on_progress=progress)
            library.refresh_from_db()
        data = libraries.library_data(library)
        last = data["last_scan"] or {}
        summary = ", ".join(f"{key} {len(value) if isinstance(value, list) else value}"
                            for key, value in last.items() if key != "seconds")
        failures = [f"failed: {f['path']}: {f['reason']}" for f in last.get("failed", [])]
        self.emit(data, json, "\n".join([f"{data['name']}: {data['scan_state']}"
                                         + (f"; {summary} in {last.get('seconds', 0):.1f}s" if last else ""),
                                         *failures]))

    def do_add(self, name, path, kind, queue, json, **_):
        library = libraries.create_library({"name": name, "path": path, "kind": kind})
        self.scan(library, queue, json)

    def do_list(self, json, **_):
        rows = [libraries.library_data(library) for library in Library.objects.all()]
        header = f"{'id':>4}  {'name':<20}  {'kind':<6}  {'state':<8}  {'assets':>6}  {'scanned':>8}  path"
        self.emit(rows, json, "\n".join([header, *map(row, rows)]) if rows else "no libraries")

    def do_show(self, library, json, **_):
        data = libraries.library_data(get_library(library))
        self.emit(data, json, "\n".join(f"{key}: {value}" for key, value in data.items()))

    def do_scan(self, library, queue, json, **_):
        self.scan(get_library(library), queue, json)

    def do_delete(self, library, json, **_):
        found = get_library(library)
        libraries.delete_library(found)
        self.emit({"deleted": found.name}, json, f"library {found.name} deleted")
