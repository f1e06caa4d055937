"""Collections: what programming rules draw from.

A manual collection lists assets in the order given; a smart one is a saved query over the
media library (library_app/queries.py), read again at every build so newly scanned files join
it. Assets a scan no longer finds are never part of a collection.
"""
from django.db import transaction

from channels_app import media
from channels_app.validation import text_problem
from retrovue.errors import ConfigError

from .models import ChannelProgramming, Collection, CollectionItem
from .queries import by_id_or_name, query_assets, validate_query

COLLECTION_FIELDS = {"name", "query", "items"}
COLLECTION_READ_ONLY = {"id", "kind", "assets", "created_at", "updated_at"}  # shown by GET, ignored
NAME_LIMIT = Collection._meta.get_field("name").max_length
# Where a programming document names collections (library_app/rules.py writes it so).
FILLER_COLLECTION_FIELDS = ("collection", "pre_roll", "post_roll", "mid_roll")


def collection_assets(collection):
    """The collection's assets now: a manual one's in its order, a smart one's in natural order;
    never one a scan no longer finds."""
    if collection.kind == Collection.Kind.SMART:
        return query_assets(collection.query)
    items = (CollectionItem.objects.filter(collection=collection, asset__missing_since=None)
             .select_related("asset").order_by("position"))
    return [item.asset for item in items]


def cached_assets(collection, cache):
    """collection_assets, read once per `cache` (a dict kept for one build)."""
    if collection.pk not in cache:
        cache[collection.pk] = collection_assets(collection)
    return cache[collection.pk]


def resolve_collection(ref, field="collection"):
    return by_id_or_name(Collection, ref, field, "collection")


def referenced_collections(rules):
    """{field: collection id} of the collections a stored programming document names."""
    named = {f"blocks[{index}].collection": block.get("collection")
             for index, block in enumerate(rules.get("blocks", []))}
    named["default.collection"] = (rules.get("default") or {}).get("collection")
    named.update({f"filler.{name}": (rules.get("filler") or {}).get(name) for name in FILLER_COLLECTION_FIELDS})
    return {field: ref for field, ref in named.items() if ref is not None}


def channels_using(collection):
    """Numbers of the channels whose programming names the collection."""
    rows = ChannelProgramming.objects.select_related("channel").order_by("channel__number")
    return [row.channel.number for row in rows if collection.pk in referenced_collections(row.rules).values()]


def _items(raw):
    """Assets of a manual list, in order (sources not yet imported are imported)."""
    if not isinstance(raw, list):
        raise ConfigError({"items": ["must be a list of asset ids or file paths"]})
    errors, assets, seen = {}, [], {}
    for index, ref in enumerate(raw):
        try:
            asset = media.resolve_asset(ref, f"items[{index}]")
        except ConfigError as exc:
            errors.update(exc.errors)
            continue
        if asset.pk in seen:
            errors[f"items[{index}]"] = [f"asset {asset.pk} is already items[{seen[asset.pk]}]"]
        seen.setdefault(asset.pk, index)
        assets.append(asset)
    if errors:
        raise ConfigError(errors)
    return assets


def validate_collection(data, collection=None):
    """(name, clean query or None, assets of a manual list or None) from a create/update body."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object with a name and a query or items"]})
    errors = {key: ["unknown field"] for key in sorted(set(data) - COLLECTION_FIELDS - COLLECTION_READ_ONLY)}
    name = data.get("name")
    problem = text_problem(name, NAME_LIMIT) if isinstance(name, str) and name.strip() else "required"
    taken = Collection.objects.filter(name=name).exclude(pk=getattr(collection, "pk", None))
    if problem:
        errors["name"] = [problem]
    elif name.isdigit():
        errors["name"] = ["must not be a number (rules name collections by id or name)"]
    elif taken.exists():
        errors["name"] = [f"a collection named '{name}' exists"]
    has_query, has_items = data.get("query") is not None, data.get("items") is not None
    if has_query == has_items:
        errors["query"] = ["give either a query (a smart collection) or items (a manual list)"]
    query = items = None
    try:
        query = validate_query(data["query"]) if has_query else None
        items = _items(data["items"]) if has_items and not has_query else None
    except ConfigError as exc:
        errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    return name, query, items


def _refuse_emptying_used(collection, query, items):
    """A collection a channel's programming draws from may not be left empty."""
    users = channels_using(collection)
    empty = not (query_assets(query) if query is not None else [a for a in items if a.missing_since is None])
    if users and empty:
        field = "query" if query is not None else "items"
        raise ConfigError({field: [f"would leave '{collection.name}' empty; the programming of channel(s) "
                                   f"{', '.join(map(str, users))} draws from it"]})


@transaction.atomic
def _store(collection, name, query, items):
    collection.name = name
    collection.kind = Collection.Kind.SMART if query is not None else Collection.Kind.MANUAL
    collection.query = query or {}
    collection.save()
    CollectionItem.objects.filter(collection=collection).delete()
    CollectionItem.objects.bulk_create(CollectionItem(collection=collection, asset=asset, position=position)
                                       for position, asset in enumerate(items or []))
    return collection


def create_collection(data):
    """A smart collection from {"name", "query"} or a manual one from {"name", "items"}."""
    return _store(Collection(), *validate_collection(data))


def update_collection(collection, data):
    """Replace the collection's name and content (either kind); channels drawing from it see the
    change from their next build."""
    name, query, items = validate_collection(data, collection)
    _refuse_emptying_used(collection, query, items)
    return _store(collection, name, query, items)


def delete_collection(collection):
    users = channels_using(collection)
    if users:
        raise ConfigError({"collection": [f"'{collection.name}' is named by the programming of channel(s) "
                                          f"{', '.join(map(str, users))}; change their rules first"]})
    collection.delete()


def collection_data(collection):
    data = {"id": collection.pk, "name": collection.name, "kind": collection.kind,
            "assets": len(collection_assets(collection)),
            "created_at": collection.created_at, "updated_at": collection.updated_at}
    if collection.kind == Collection.Kind.SMART:
        data["query"] = collection.query
    else:
        data["items"] = list(CollectionItem.objects.filter(collection=collection).order_by("position")
                             .values_list("asset_id", flat=True))
    return data
