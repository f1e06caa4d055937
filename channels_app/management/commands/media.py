"""`retrovue media import|list`: the media library from the command line."""
import sys

from django.core.management.base import CommandError
from tqdm import tqdm

from channels_app import media
from channels_app.models import MediaAsset
from retrovue.commands import ServiceCommand


def _import_args(parser):
    parser.add_argument("folder", help="a folder under RETROVUE_MEDIA_ROOTS (searched recursively) "
                                       "or one file")


def row(asset):
    duration = f"{asset['duration_s']:.1f}s"
    codecs = f"{asset['video_codec']}/{asset['audio_codec'] or '-'}"
    rate = f"{asset['frame_rate']:g}fps" if asset["frame_rate"] else "-"
    return (f"{asset['id']:>5}  {asset['title'][:28]:<28}  {duration:>9}  {codecs:<10}  "
            f"{asset['resolution'] or '-':>9}  {rate:>8}  {asset['source']}")


class Command(ServiceCommand):
    help = "Import media files (probed with ffprobe) and list the library."
    subcommands = {
        "import": ("import the media files of a folder; already imported, unchanged files are skipped",
                   _import_args),
        "list": ("list imported media", None),
    }

    def do_import(self, folder, json, **_):
        """Exit 1 when some file failed, after the summary, so scripts notice."""
        files = media.find_media(folder)
        with tqdm(total=len(files), unit="file", file=sys.stderr, disable=None) as bar:
            summary = media.import_files(files, step=bar.update)
        counts = {key: len(summary[key]) for key in ("imported", "skipped", "failed")}
        lines = [", ".join(f"{key} {count}" for key, count in counts.items())]
        lines += [f"failed: {failure['path']}: {failure['reason']}" for failure in summary["failed"]]
        self.emit(summary, json, "\n".join(lines))
        if summary["failed"]:
            raise CommandError(f"{counts['failed']} of {len(files)} files could not be imported",
                               returncode=1)

    def do_list(self, json, **_):
        rows = [media.asset_data(asset) for asset in MediaAsset.objects.all()]
        header = (f"{'id':>5}  {'title':<28}  {'duration':>9}  {'codecs':<10}  {'size':>9}  "
                  f"{'rate':>8}  source")
        self.emit(rows, json, "\n".join([header, *map(row, rows)]))
