"""Collections: smart queries (each key), manual lists in their order, assets a scan no longer
finds left out, per-field validation, and collections a channel's rules name kept."""
import pytest
from django.utils import timezone

from channels_app.models import MediaAsset
from library_app import collections, queries
from library_app.models import ChannelProgramming, Library
from retrovue.errors import ConfigError

from .conftest import MEDIA, make_clip
from .factories import make_channel


def make_asset(path, seconds=60, **fields):
    """A library asset made directly (its file need not exist: the builder reads only the row)."""
    return MediaAsset.objects.create(source=str(MEDIA / path), title=fields.pop("title", path.rsplit("/", 1)[-1]),
                                     duration_s=seconds, **fields)


@pytest.fixture
def library(db):
    episodes = [make_asset(f"shows/Sitcom/S{s:02}E{e:02}.mp4", 1320, kind="show", show="Sitcom", season=s,
                           episode=e, genres=["Comedy"], year=1990 + s)
                for s, e in [(2, 1), (1, 2), (1, 1)]]
    drama = make_asset("shows/Drama/S01E01.mp4", 2700, kind="show", show="Drama", season=1, episode=1,
                       genres=["Drama"], year=1995)
    movies = {
        "alien": make_asset("movies/Alien.mp4", 7020, kind="movie", year=1979, genres=["Horror", "Sci-Fi"],
                            tags=["classic", "space"]),
        "heat": make_asset("movies/Heat.mp4", 10200, kind="movie", year=1995, genres=["crime"], tags=["classic"]),
        "tron": make_asset("movies/Tron.mp4", 5760, kind="movie", year=1982, genres=["Sci-Fi"], tags=["Space"]),
    }
    trailer = make_asset("extras/trailer.mp4", 90, tags=["trailer"])
    return {"episodes": episodes, "drama": drama, **movies, "trailer": trailer}


def titles(query):
    return [a.title for a in queries.query_assets(queries.validate_query(query))]


def test_smart_query_keys_each_select_what_they_name(library):
    assert titles({"show": "sitcom"}) == ["S01E01.mp4", "S01E02.mp4", "S02E01.mp4"]  # natural order
    assert titles({"show": ["Sitcom", "Drama"], "season": 1}) == ["S01E01.mp4", "S01E01.mp4", "S01E02.mp4"]
    assert titles({"show": "Sitcom", "season": [2]}) == ["S02E01.mp4"]
    assert titles({"genre": ["sci-fi", "Crime"]}) == ["Alien.mp4", "Tron.mp4", "Heat.mp4"]  # any of, by year
    assert titles({"tags": ["classic", "space"]}) == ["Alien.mp4"]  # all of
    assert titles({"tags": "SPACE"}) == ["Alien.mp4", "Tron.mp4"]
    assert titles({"year": {"from": 1980, "to": 1995}, "kind": "movie"}) == ["Tron.mp4", "Heat.mp4"]
    assert titles({"year": {"to": 1980}}) == ["Alien.mp4"]
    assert titles({"kind": "other"}) == ["trailer.mp4"]
    assert titles({"kind": "movie", "duration": {"min": 100, "max": 120}}) == ["Alien.mp4"]  # minutes
    assert titles({"duration": {"max": 2}}) == ["trailer.mp4"]
    assert len(titles({})) == 8
    make_asset("shows/Élan/S01E01.mp4", 1500, kind="show", show="Élan", season=1, episode=1)
    assert titles({"show": "éLAN"}) == ["S01E01.mp4"]  # case ignored beyond ASCII, on any database


def test_library_query_takes_the_files_under_its_folder(library):
    Library.objects.create(name="Movies", path=str(MEDIA / "movies"), kind="movies")
    Library.objects.create(name="Movies 2", path=str(MEDIA / "movies2"), kind="movies")
    make_asset("movies2/Other.mp4", 5000, kind="movie")
    clean = queries.validate_query({"library": "Movies"})
    assert isinstance(clean["library"], int)
    assert titles({"library": "Movies"}) == ["Alien.mp4", "Tron.mp4", "Heat.mp4"]  # not movies2/


def test_manual_list_keeps_its_order_and_leaves_missing_files_out(library):
    found = collections.create_collection({"name": "Picks", "items": [library["tron"].pk, library["alien"].pk,
                                                                      library["trailer"].pk]})
    assert [a.title for a in collections.collection_assets(found)] == ["Tron.mp4", "Alien.mp4", "trailer.mp4"]
    smart = collections.create_collection({"name": "Space", "query": {"tags": ["space"]}})
    MediaAsset.objects.filter(pk=library["alien"].pk).update(missing_since=timezone.now())
    assert [a.title for a in collections.collection_assets(found)] == ["Tron.mp4", "trailer.mp4"]
    assert [a.title for a in collections.collection_assets(smart)] == ["Tron.mp4"]
    data = collections.collection_data(found)
    assert (data["kind"], data["items"], data["assets"]) == ("manual", [library["tron"].pk, library["alien"].pk,
                                                                      library["trailer"].pk], 2)
    assert collections.collection_data(smart)["query"] == {"tags": ["space"]}


def test_manual_item_by_path_is_imported_with_ffprobe(db):
    clip = make_clip(MEDIA / "collections" / "bumper.mp4", 1, size="160x120")
    found = collections.create_collection({"name": "Bumpers", "items": [str(clip)]})
    [asset] = collections.collection_assets(found)
    assert asset.source == str(clip) and asset.duration_s == pytest.approx(1, abs=0.1)


@pytest.mark.parametrize("body, field", [
    ({"name": "X", "query": {"colour": "red"}}, "query.colour"),
    ({"name": "X", "query": {"season": "one"}}, "query.season"),
    ({"name": "X", "query": {"season": []}}, "query.season"),
    ({"name": "X", "query": {"year": {"from": 1990, "to": 1980}}}, "query.year.to"),
    ({"name": "X", "query": {"year": {"since": 1990}}}, "query.year.since"),
    ({"name": "X", "query": {"kind": "series"}}, "query.kind"),
    ({"name": "X", "query": {"duration": {"min": -1}}}, "query.duration.min"),
    ({"name": "X", "query": {"library": "nowhere"}}, "query.library"),
    ({"name": "X", "query": {"genre": ""}}, "query.genre"),
    ({"name": "X", "items": [999999]}, "items[0]"),
    ({"name": "X", "items": "alien"}, "items"),
    ({"name": "X"}, "query"),
    ({"name": "X", "query": {}, "items": []}, "query"),
    ({"name": "", "query": {}}, "name"),
    ({"name": "42", "query": {}}, "name"),
    ({"name": "X", "query": {}, "colour": 1}, "colour"),
])
def test_bad_collections_are_refused_per_field(library, body, field):
    with pytest.raises(ConfigError) as refused:
        collections.create_collection(body)
    assert field in refused.value.errors, refused.value.errors


def test_the_same_asset_twice_and_a_taken_name_are_refused(library):
    collections.create_collection({"name": "Movies", "query": {"kind": "movie"}})
    with pytest.raises(ConfigError) as refused:
        collections.create_collection({"name": "Movies", "items": [library["heat"].pk, library["heat"].source]})
    assert set(refused.value.errors) == {"name", "items[1]"}


def test_a_collection_rules_name_is_neither_deleted_nor_emptied(library):
    used = collections.create_collection({"name": "Movies", "query": {"kind": "movie"}})
    spare = collections.create_collection({"name": "Spare", "query": {"kind": "movie"}})
    ChannelProgramming.objects.create(channel=make_channel(7), rules={
        "timezone": "UTC", "blocks": [], "default": {"collection": used.pk, "order": "shuffle"}})
    assert collections.channels_using(used) == [7]
    with pytest.raises(ConfigError) as refused:
        collections.delete_collection(used)
    assert "channel(s) 7" in refused.value.errors["collection"][0]
    with pytest.raises(ConfigError) as refused:
        collections.update_collection(used, {"name": "Movies", "query": {"kind": "movie", "year": {"from": 2090}}})
    assert "empty" in refused.value.errors["query"][0]
    collections.update_collection(used, {"name": "Films", "items": [library["heat"].pk]})
    assert [a.title for a in collections.collection_assets(used)] == ["Heat.mp4"]
    assert collections.resolve_collection("Films", "x") == used
    assert collections.resolve_collection({"id": used.pk}, "x") == used
    collections.delete_collection(spare)
    with pytest.raises(ConfigError) as refused:
        collections.resolve_collection("Spare", "blocks[0].collection")
    assert refused.value.errors == {"blocks[0].collection": ["no collection 'Spare'"]}
