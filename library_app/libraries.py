"""Libraries: folders under the media roots whose files a scan turns into media assets.

Created, renamed and deleted only through here; every field is checked and all problems are
reported together, nothing written when one is wrong. An asset belongs to a library by its
path, so deleting a library keeps its assets (schedules may still air them).
"""
from django.db import transaction
from django.db.models.functions import Substr

from channels_app import media, validation
from channels_app.models import MediaAsset
from retrovue.errors import ConfigError

from .models import Library

# Shown by library_data and ignored when sent back, so what GET returns can be edited and sent.
READ_ONLY = {"id", "scan_state", "progress", "scan_done", "scan_total", "last_scan", "last_scan_at", "assets"}
PATH_MAX = Library._meta.get_field("path").max_length


def _name(value, library=None):
    name = validation.validate_name(value)
    if Library.objects.filter(name=name).exclude(pk=library and library.pk).exists():
        raise ConfigError({"name": [f"a library named '{name}' already exists"]})
    return name


def _storable(path):
    return len(path) <= PATH_MAX and not any(ord(c) < 32 or ord(c) == 127 for c in path)


def _path(value):
    if not isinstance(value, str) or not value.strip():
        raise ConfigError({"path": ["required: a folder under the media roots"]})
    if not _storable(value):
        raise ConfigError({"path": [f"must be a folder path of at most {PATH_MAX} printable characters"]})
    path = str(media.check_folder(value, "path"))
    if not _storable(path):
        raise ConfigError({"path": ["leads to a folder whose path is too long or holds control characters"]})
    taken = Library.objects.filter(path=path).first()
    if taken:
        raise ConfigError({"path": [f"'{path}' is already the library '{taken.name}'"]})
    return path


def _kind(value):
    if value not in Library.Kind.values:
        raise ConfigError({"kind": [f"'{value}' is not one of {', '.join(Library.Kind.values)}"]})
    return value


def _checked(data, allowed, checks):
    """The checked values of `checks` ({field: check}) given in `data`, or one ConfigError
    naming every problem (unknown fields included)."""
    if not isinstance(data, dict):
        raise ConfigError({"non_field_errors": ["expected an object"]})
    errors = {key: ["unknown field"] for key in sorted(set(data) - allowed - READ_ONLY)}
    clean = {}
    for field, check in checks.items():
        try:
            clean[field] = check(data.get(field))
        except ConfigError as exc:
            errors.update(exc.errors)
    if errors:
        raise ConfigError(errors)
    return clean


def check_library(data, library=None):
    """The checked fields of a new library (`library` None: name, path and kind) or of a change
    to one (name and/or kind; its folder cannot change); nothing is written."""
    if library is None:
        return _checked(data, {"name", "path", "kind"}, {"name": _name, "path": _path, "kind": _kind})
    if isinstance(data, dict) and data.get("path", library.path) != library.path:
        raise ConfigError({"path": ["cannot be changed; create another library for another folder"]})
    checks = {"name": lambda v: _name(v, library), "kind": _kind}
    return _checked(data, {"name", "kind", "path"}, {key: checks[key] for key in checks if key in data})


def create_library(data):
    """A new library from {"name", "path", "kind"}; it is not scanned yet."""
    return Library.objects.create(**check_library(data))


def update_library(library, data):
    """Rename a library or change its kind (then its next scan reads every file again: the
    same files mean other things)."""
    clean = check_library(data, library)
    with transaction.atomic():
        if clean.get("kind", library.kind) != library.kind:
            library_assets(library).update(file_mtime=None)
        for field, value in clean.items():
            setattr(library, field, value)
        if clean:  # only these fields: a scan under way writes its own
            library.save(update_fields=list(clean))
    return library


def delete_library(library):
    """Forget the library; its assets stay (schedules and collections may hold them)."""
    library.delete()


def library_assets(library):
    """The media assets under the library's folder, missing ones included. The prefix is also
    compared exactly: SQLite's LIKE (startswith) ignores case, folders do not."""
    prefix = library.path.rstrip("/") + "/"
    return (MediaAsset.objects.filter(source__startswith=prefix)
            .alias(head=Substr("source", 1, len(prefix))).filter(head=prefix))


def library_data(library):
    return {
        "id": library.pk, "name": library.name, "path": library.path, "kind": library.kind,
        "scan_state": library.scan_state, "progress": library.progress, "scan_done": library.scan_done,
        "scan_total": library.scan_total, "last_scan": library.last_scan, "last_scan_at": library.last_scan_at,
        "assets": library_assets(library).filter(missing_since=None).count(),
    }
