"""Channel logos: PNG or JPEG images stored as RETROVUE_DATA_DIR/logos/<channel uuid>.<png|jpg>.

An upload is checked before anything is written: its magic bytes, and its header parsed far
enough to read the picture's size, so a renamed text file or a truncated image is refused. The
file is written to a temporary name and renamed, so players never fetch half a logo.
"""
import os
import struct
import tempfile
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from retrovue.errors import ConfigError, NotFound

from .models import Channel

MAX_LOGO_BYTES = 1024 * 1024
MAX_SIDE = 4096
CONTENT_TYPES = {"png": "image/png", "jpg": "image/jpeg"}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# JPEG start-of-frame markers (baseline, progressive, lossless, arithmetic): they carry the size.
JPEG_FRAME_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers without a length field: TEM and the restart markers.
JPEG_BARE_MARKERS = {0x01, *range(0xD0, 0xD8)}


def refusal(message):
    return ConfigError({"logo": [message]})


def logos_dir():
    return settings.RETROVUE_DATA_DIR / "logos"


def _png_size(data):
    # The first chunk must be IHDR: length 13, then width and height as big-endian 32-bit.
    if len(data) < 33 or data[12:16] != b"IHDR" or struct.unpack(">I", data[8:12])[0] != 13:
        raise refusal("is not a whole PNG image (no IHDR header)")
    return struct.unpack(">II", data[16:24])


def _jpeg_size(data):
    """Walk the segments from SOI to the first start-of-frame, which holds the size."""
    at = 2
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            break
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte before a marker
            at += 1
            continue
        if marker in JPEG_BARE_MARKERS:
            at += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image, or scan data before any frame header
            break
        length = struct.unpack(">H", data[at + 2:at + 4])[0]
        if marker in JPEG_FRAME_MARKERS:
            if length < 8 or at + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return width, height
        at += 2 + length
    raise refusal("is not a whole JPEG image (no frame header)")


def image_kind(data):
    """("png" | "jpg", width, height) of an acceptable logo, else ConfigError on "logo"."""
    if not data:
        raise refusal("is empty: send a PNG or JPEG image")
    if len(data) > MAX_LOGO_BYTES:
        raise refusal(f"is larger than 1 MB ({MAX_LOGO_BYTES} bytes)")
    if data.startswith(PNG_SIGNATURE):
        kind, (width, height) = "png", _png_size(data)
    elif data.startswith(b"\xff\xd8\xff"):
        kind, (width, height) = "jpg", _jpeg_size(data)
    else:
        raise refusal("must be a PNG or JPEG image")
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise refusal(f"is {width}x{height}; each side must be within 1..{MAX_SIDE} pixels")
    return kind, width, height


def read_upload(upload):
    """The bytes of an uploaded file, read no further than one byte past the limit."""
    return upload.read(MAX_LOGO_BYTES + 1)


def logo_path(channel):
    return logos_dir() / channel.logo if channel.logo else None


def extension(channel):
    """The stored logo's kind, "png" or "jpg" (its public URL ends with it)."""
    return channel.logo.rpartition(".")[2]


def _write_atomically(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def remove_files(channel_id, keep=""):
    """Remove the channel's logo files but `keep` (a deleted channel's: all of them), once the
    change that stops naming them commits: a save that fails keeps the file its record names."""
    def remove():
        for ext in CONTENT_TYPES:
            name = f"{channel_id}.{ext}"
            if name != keep:
                (logos_dir() / name).unlink(missing_ok=True)
    transaction.on_commit(remove)


def store_logo(channel, data):
    """Check `data` and make it the channel's logo, replacing (and removing) any other."""
    kind, _, _ = image_kind(data)
    name = f"{channel.pk}.{kind}"
    with transaction.atomic():
        # Locked: two uploads of different kinds must not leave the record naming a removed file.
        if Channel.objects.select_for_update().filter(pk=channel.pk).first() is None:
            raise NotFound(f"no channel '{channel.number}'")
        _write_atomically(logos_dir() / name, data)
        Channel.objects.filter(pk=channel.pk).update(logo=name, updated_at=timezone.now())
        remove_files(channel.pk, keep=name)
    channel.logo = name
    return channel


def remove_logo(channel):
    Channel.objects.filter(pk=channel.pk).update(logo="", updated_at=timezone.now())
    remove_files(channel.pk)
    channel.logo = ""
    return channel
