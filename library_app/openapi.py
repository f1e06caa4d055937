"""The shapes of the library, collection and programming endpoints, for the OpenAPI schema; the
views validate through the service layer, these only describe bodies."""
from rest_framework import serializers as s

from . import models


class LibraryCreate(s.Serializer):
    name = s.CharField(max_length=100)
    path = s.CharField(help_text="a folder under RETROVUE_MEDIA_ROOTS")
    kind = s.ChoiceField(models.Library.Kind.choices, help_text="how file names are read")


class LibraryChange(s.Serializer):
    name = s.CharField(max_length=100, required=False)
    kind = s.ChoiceField(models.Library.Kind.choices, required=False)


class Library(LibraryCreate):
    id = s.IntegerField()
    scan_state = s.ChoiceField(models.Library.ScanState.choices)
    progress = s.FloatField(help_text="fraction of the scan under way done (1.0 when idle)")
    scan_done = s.IntegerField()
    scan_total = s.IntegerField()
    last_scan = s.DictField(help_text="found, new, changed, unchanged, removed, failed, seconds")
    last_scan_at = s.DateTimeField(allow_null=True)
    assets = s.IntegerField(help_text="media files found there and not missing")


class CollectionChange(s.Serializer):
    name = s.CharField(max_length=100)
    query = s.DictField(required=False, help_text="a smart collection: show, season, genre, year, kind, "
                                                  "duration, tags, library")
    items = s.ListField(child=s.JSONField(), required=False, help_text="a manual collection: asset ids or paths")


class Collection(CollectionChange):
    id = s.IntegerField()
    kind = s.ChoiceField(models.Collection.Kind.choices)
    assets = s.IntegerField(help_text="how many assets it holds now")


class Block(s.Serializer):
    days = s.ListField(child=s.ChoiceField(["mon", "tue", "wed", "thu", "fri", "sat", "sun"]))
    start = s.CharField(help_text="HH:MM local time")
    end = s.CharField(help_text="HH:MM local time (24:00 for midnight)")
    collection = s.JSONField(help_text="id or name")
    order = s.ChoiceField(["chronological", "shuffle", "shuffle_in_order", "random"])
    no_repeat = s.IntegerField(required=False, help_text="random: no item again within this many")


class Filler(s.Serializer):
    collection = s.JSONField(help_text="id or name")
    pad_to_minutes = s.IntegerField(required=False, help_text="a divisor of 60")
    cooldown_minutes = s.IntegerField(required=False)
    pre_roll = s.JSONField(required=False, help_text="collection aired before each program")
    post_roll = s.JSONField(required=False, help_text="collection aired after each program")
    mid_roll = s.JSONField(required=False, help_text="collection aired at each program's chapter marks")


class ProgrammingChange(s.Serializer):
    timezone = s.CharField(required=False)
    blocks = Block(many=True, required=False)
    default = s.DictField(required=False, help_text="collection and order outside the blocks")
    filler = Filler(required=False)
    programs = s.ListField(child=s.DictField(), required=False, help_text="hand-placed programs: start, asset")


class Programming(s.Serializer):
    rules = ProgrammingChange()
    built_until = s.DateTimeField(allow_null=True)
    built_at = s.DateTimeField(allow_null=True)
    build_error = s.CharField()
    next = s.ListField(child=s.DictField(), help_text="the next programs: start, title, origin")
