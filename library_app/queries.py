"""Smart collection queries: what a saved query selects from the media library.

Keys (each optional, every one given must match; text matches ignore case):

- `show`: a show name or a list of them (any of);
- `season`: a season number or a list of them (any of);
- `genre`: a genre or a list of them (the asset has any of them);
- `tags`: a tag or a list of them (the asset has all of them: tags narrow a selection);
- `year`: {"from": 1980, "to": 1989}, either bound optional, both inclusive;
- `kind`: "show", "movie" or "other";
- `duration`: {"min": 20, "max": 40} in minutes, either bound optional, both inclusive;
- `library`: a library by id or name: the assets whose file lies under its folder.

Assets a scan no longer finds (`missing_since` set) are never selected. Show names, genres and
tags are matched in Python (ignoring case the same way for any alphabet; genres and tags are
JSON lists) after the database has filtered on the other keys, so SQLite and PostgreSQL give
the same answer.
"""
from functools import reduce
from operator import or_

from django.db.models import Q

from channels_app.models import MediaAsset
from channels_app.validation import text_problem
from retrovue.errors import ConfigError

from .models import Library

QUERY_KEYS = {"show", "season", "genre", "tags", "year", "kind", "duration", "library"}
KINDS = {"show": "show", "movie": "movie", "other": ""}  # query value -> MediaAsset.kind
TEXT_LIMIT = 200
MAX_YEAR = 9999
MAX_MINUTES = 100_000


def natural_key(asset):
    """Episodes by show, season and episode; everything else by year, title and file."""
    if asset.show:
        return (0, asset.show.casefold(), asset.season or 0, asset.episode or 0, asset.title.casefold(),
                asset.source)
    return (1, "", asset.year or 0, 0, asset.title.casefold(), asset.source)


def _as_list(value, field, check):
    """A value or a non-empty list of values, each passed through `check` (raises ValueError)."""
    values = value if isinstance(value, list) else [value]
    if not values:
        raise ConfigError({field: ["must not be an empty list"]})
    try:
        return [check(v) for v in values]
    except ValueError as exc:
        raise ConfigError({field: [str(exc)]}) from None


def _text(value):
    if not isinstance(value, str) or not value.strip() or text_problem(value, TEXT_LIMIT):
        raise ValueError(f"'{value}' is not a name (text of 1 to {TEXT_LIMIT} characters)")
    return value.strip()


def _whole(low, high, what):
    def check(value):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"'{value}' is not {what} (a whole number {low}..{high})")
        return value
    return check


def _number(value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_MINUTES:
        raise ValueError(f"'{value}' is not a number of minutes (0..{MAX_MINUTES})")
    return value


def _range(value, field, names, check):
    """{low name: x, high name: y}, either optional, low <= high."""
    if not isinstance(value, dict) or not value:
        raise ConfigError({field: [f"must be an object with {' and/or '.join(names)}"]})
    errors = {f"{field}.{key}": ["unknown field"] for key in sorted(set(value) - set(names))}
    clean = {}
    for name in names:
        if name in value:
            try:
                clean[name] = check(value[name])
            except ValueError as exc:
                errors[f"{field}.{name}"] = [str(exc)]
    low, high = (clean.get(name) for name in names)
    if not errors and low is not None and high is not None and low > high:
        errors[f"{field}.{names[1]}"] = [f"must not be less than {names[0]} ({low})"]
    if errors:
        raise ConfigError(errors)
    return clean


def by_id_or_name(model, ref, field, what):
    """A row by id (a number, or {"id": n} as GET shows it) or by name; ConfigError on `field`."""
    if isinstance(ref, dict) and "id" in ref:
        ref = ref["id"]
    if ref in (None, ""):
        raise ConfigError({field: [f"required: a {what} id or name"]})
    by_id = isinstance(ref, int) and not isinstance(ref, bool)
    if by_id or (isinstance(ref, str) and ref.strip().isdigit()):
        found = model.objects.filter(pk=int(ref)).first()
    else:
        found = model.objects.filter(name=ref).first() if isinstance(ref, str) else None
    if found is None:
        raise ConfigError({field: [f"no {what} '{ref}'"]})
    return found


def validate_query(query, field="query"):
    """The clean query (lists where a list is allowed, the library by id); ConfigError per key
    (`query.season`)."""
    if not isinstance(query, dict):
        raise ConfigError({field: ["must be an object of query keys: " + ", ".join(sorted(QUERY_KEYS))]})
    errors = {f"{field}.{key}": ["unknown query key"] for key in sorted(set(query) - QUERY_KEYS)}
    checks = {
        "show": lambda v, f: _as_list(v, f, _text),
        "genre": lambda v, f: _as_list(v, f, _text),
        "tags": lambda v, f: _as_list(v, f, _text),
        "season": lambda v, f: _as_list(v, f, _whole(0, 10_000, "a season")),
        "year": lambda v, f: _range(v, f, ("from", "to"), _whole(0, MAX_YEAR, "a year")),
        "duration": lambda v, f: _range(v, f, ("min", "max"), _number),
        "kind": lambda v, f: _kind(v, f),
        "library": lambda v, f: by_id_or_name(Library, v, f, "library").pk,
    }
    clean = {}
    for key, check in checks.items():
        if key in query:
            try:
                clean[key] = check(query[key], f"{field}.{key}")
            except ConfigError as exc:
                errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    return clean


def _kind(value, field):
    if value not in KINDS:
        raise ConfigError({field: [f"'{value}' is not one of {', '.join(KINDS)}"]})
    return value


def query_assets(query):
    """The present assets a clean query selects, in natural order."""
    found = MediaAsset.objects.filter(missing_since=None)
    if "show" in query:
        found = found.exclude(show="")
    if "season" in query:
        found = found.filter(season__in=query["season"])
    if "kind" in query:
        found = found.filter(kind=KINDS[query["kind"]])
    bounds = {"year__gte": query.get("year", {}).get("from"), "year__lte": query.get("year", {}).get("to"),
              "duration_s__gte": _seconds(query.get("duration", {}).get("min")),
              "duration_s__lte": _seconds(query.get("duration", {}).get("max"))}
    found = found.filter(**{name: value for name, value in bounds.items() if value is not None})
    if "library" in query:
        library = Library.objects.filter(pk=query["library"]).first()
        if library is None:
            return []
        found = found.filter(source__startswith=library.path.rstrip("/") + "/")
    shows, genres, tags = ({text.casefold() for text in query.get(key, [])} for key in ("show", "genre", "tags"))
    if shows and all(name.isascii() for name in shows):  # the database's case folding is ASCII's
        found = found.filter(reduce(or_, (Q(show__iexact=name) for name in shows)))
    if shows or genres or tags:  # matched on plain rows first: whole assets only for the matches
        rows = found.values_list("pk", "show", "genres" if genres else "show", "tags" if tags else "show")
        chosen = MediaAsset.objects.in_bulk([
            pk for pk, show, asset_genres, asset_tags in rows
            if (not shows or show.casefold() in shows) and (not genres or genres & _folded(asset_genres))
            and tags <= _folded(asset_tags)]).values()
    else:
        chosen = found
    return sorted(chosen, key=natural_key)


def _seconds(minutes):
    return None if minutes is None else minutes * 60


def _folded(values):
    return {str(v).casefold() for v in values} if isinstance(values, list) else set()
