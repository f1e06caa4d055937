"""`retrovue collection create|list|show|delete`: collections of media from the command line."""
from library_app import collections
from library_app.api import get_collection
from library_app.models import Collection
from retrovue.commands import ServiceCommand, read_json


def _ref(parser):
    parser.add_argument("collection", help="collection id or name")


def _create_args(parser):
    parser.add_argument("file", help='the collection as JSON: {"name", "query": {...}} or {"name", "items": [...]}; '
                                     "- for stdin")


class Command(ServiceCommand):
    help = "Create and list collections: smart queries over the media library, or manual lists."
    subcommands = {
        "create": ("create a collection from a JSON file", _create_args),
        "list": ("list collections", None),
        "show": ("one collection with its assets", _ref),
        "delete": ("delete a collection no channel's programming names", _ref),
    }

    def do_create(self, file, json, **_):
        data = collections.collection_data(collections.create_collection(read_json(file)))
        self.emit(data, json, f"collection {data['id']} {data['name']}: {data['assets']} assets")

    def do_list(self, json, **_):
        rows = [collections.collection_data(c) for c in Collection.objects.all()]
        lines = [f"{r['id']:>4}  {r['name'][:30]:<30}  {r['kind']:<6}  {r['assets']:>6}" for r in rows]
        self.emit(rows, json, "\n".join(lines) if rows else "no collections")

    def do_show(self, collection, json, **_):
        found = get_collection(collection)
        data = collections.collection_data(found)
        assets = collections.collection_assets(found)
        self.emit({**data, "items": [a.pk for a in assets]}, json, "\n".join(
            [f"{data['name']} ({data['kind']}): {len(assets)} assets",
             *(f"{a.pk:>6}  {a.show + ' ' if a.show else ''}{a.title}  {a.source}" for a in assets)]))

    def do_delete(self, collection, json, **_):
        found = get_collection(collection)
        collections.delete_collection(found)
        self.emit({"deleted": found.name}, json, f"collection {found.name} deleted")
