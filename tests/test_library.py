"""Media libraries: real folders of lavfi clips in the layouts people have (Show/Season 01,
Kodi .nfo files, embedded tags, artwork), scanned into media assets with real ffprobe."""
import os
import shutil
import subprocess
import uuid

import pytest

from channels_app.models import MediaAsset
from channels_app.programming import channel_segments
from channels_app.schedules import replace_schedule
from library_app import libraries, metadata
from library_app.models import Library
from library_app.scanning import scan_library
from retrovue.errors import ConfigError

from .conftest import MEDIA
from .factories import make_channel

TEMPLATES = MEDIA / "library-templates"
SHOW = "Good Show/Season 01"
PILOT = f"{SHOW}/Good Show - S01E01 - Pilot.mp4"
SECOND = f"{SHOW}/Good Show - 1x02 - Second Step.mp4"
DOUBLE = f"{SHOW}/s1e3e4.mp4"
MOVIE = "Big Movie (1985)/Big Movie (1985).mp4"

TVSHOW_NFO = """<?xml version="1.0" encoding="UTF-8" standalone="yes" ?>
<tvshow><title>The Good Show</title><plot>A show about good things.</plot><genre>Comedy</genre>
<genre>Drama</genre><mpaa>Rated TV-PG</mpaa><premiered>1990-09-01</premiered><tag>classic</tag></tvshow>"""
PILOT_NFO = """<episodedetails><title>The Pilot</title><season>1</season><episode>1</episode>
<plot>Where it all begins.</plot><aired>1990-09-10</aired></episodedetails>"""
MOVIE_NFO = """<movie><title>Big Movie</title><year>1985</year><plot>Big things happen.</plot>
<genre>Action</genre><genre>Adventure</genre><mpaa>PG</mpaa><tag>80s</tag></movie>
https://www.themoviedb.org/movie/1"""
CHAPTERS = ";FFMETADATA1\n[CHAPTER]\nTIMEBASE=1/1000\nSTART=0\nEND=400\n" \
           "[CHAPTER]\nTIMEBASE=1/1000\nSTART=400\nEND=1000\n"


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *map(str, args)], check=True)


def clip(path, seconds=1, *extra):
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=160x120:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
           *extra, "-t", seconds, "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", path)


@pytest.fixture(scope="module")
def templates():
    """Clips made once: plain, longer, with an embedded title and genre, with chapters; a jpg."""
    TEMPLATES.mkdir(parents=True, exist_ok=True)
    (TEMPLATES / "chapters.txt").write_text(CHAPTERS)
    made = {name: TEMPLATES / f"{name}.mp4" for name in ("plain", "longer", "tagged", "chapters")}
    clip(made["plain"])
    clip(made["longer"], 2)
    clip(made["tagged"], 1, "-metadata", "title=Tagged Title", "-metadata", "genre=Drama;Mystery")
    clip(made["chapters"], 1, "-f", "ffmetadata", "-i", TEMPLATES / "chapters.txt", "-map", "0:v",
         "-map", "1:a", "-map_chapters", "2")
    made["jpg"] = TEMPLATES / "image.jpg"
    ffmpeg("-f", "lavfi", "-i", "color=c=red:size=64x64", "-frames:v", "1", made["jpg"])
    return made


@pytest.fixture
def tree(templates):
    """A library tree of its own: a show with tvshow.nfo and poster, episodes named three ways
    (one with an episode .nfo, one with embedded tags), a movie in its folder with movie.nfo."""
    root = MEDIA / f"lib-{uuid.uuid4().hex[:8]}"
    files = {
        f"shows/{PILOT}": templates["plain"], f"shows/{SECOND}": templates["plain"],
        f"shows/{DOUBLE}": templates["tagged"], "shows/Good Show/poster.jpg": templates["jpg"],
        f"movies/{MOVIE}": templates["chapters"], "movies/Big Movie (1985)/fanart.jpg": templates["jpg"],
    }
    for relative, template in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, root / relative)
    (root / "shows/Good Show/tvshow.nfo").write_text(TVSHOW_NFO)
    (root / f"shows/{PILOT}").with_suffix(".nfo").write_text(PILOT_NFO)
    (root / "movies/Big Movie (1985)/movie.nfo").write_text(MOVIE_NFO)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def library(root, kind):
    return libraries.create_library({"name": f"{kind} {root.name}", "path": str(root / kind), "kind": kind})


def asset(root, relative):
    return MediaAsset.objects.get(source=str(root / relative))


@pytest.mark.parametrize("relative, kind, expected", [
    ("Show/Season 01/Show - S01E02 - Title.mkv", "shows",
     {"kind": "show", "show": "Show", "season": 1, "episode": 2, "title": "Title"}),
    ("Show (2005)/Season 2/2x05 - Cross Title.mp4", "shows",
     {"show": "Show", "season": 2, "episode": 5, "title": "Cross Title"}),
    ("Show/Season 01/S01E02E03.mkv", "shows", {"season": 1, "episode": 2, "episode_end": 3, "title": ""}),
    ("The.Show.s1e2.The.Pilot.mkv", "shows", {"show": "The Show", "season": 1, "episode": 2, "title": "The Pilot"}),
    ("Show/Specials/Pilot.mkv", "shows", {"show": "Show", "season": 0, "title": "Pilot"}),
    ("Show/1920x1080.mkv", "shows", {"show": "Show", "title": "1920x1080"}),
    ("Title (1985).mkv", "movies", {"kind": "movie", "title": "Title", "year": 1985}),
    ("Title (1985)/movie.mkv", "movies", {"title": "Title", "year": 1985}),
    ("2001 A Space Odyssey (1968).mkv", "movies", {"title": "2001 A Space Odyssey", "year": 1968}),
    ("Plain.Movie.mkv", "movies", {"title": "Plain Movie"}),
    ("Show/Season 01/Show - S01E02.mkv", "other", {"kind": "", "title": "Show - S01E02"}),
])
def test_file_names_spell_episodes_and_movies(relative, kind, expected):
    parsed = metadata.parse_name(relative, kind)
    assert {key: parsed.get(key) for key in expected} == expected


def test_nfo_with_entities_is_refused_and_multi_episode_nfo_read(tmp_path):
    (tmp_path / "bomb.nfo").write_text('<!DOCTYPE x [<!ENTITY a "aaaa">]><movie><title>&a;</title></movie>')
    with pytest.raises(ValueError, match="DOCTYPE"):
        metadata.read_nfo(tmp_path / "bomb.nfo")
    (tmp_path / "two.nfo").write_text("<episodedetails><title>One</title><episode>3</episode></episodedetails>"
                                      "<episodedetails><title>Two</title><episode>4</episode></episodedetails>")
    fields = metadata.nfo_layer(tmp_path / "two.nfo", "episodedetails")
    assert (fields["title"], fields["episode"], fields["episode_end"]) == ("One", 3, 4)


@pytest.mark.django_db
def test_scan_stores_metadata_from_names_nfo_tags_and_artwork(tree):
    shows, movies = library(tree, "shows"), library(tree, "movies")
    seen = []
    summary = scan_library(shows, on_progress=lambda done, total: seen.append((done, total)))
    assert {k: summary[k] for k in ("found", "new", "changed", "unchanged", "removed", "failed")} == \
        {"found": 3, "new": 3, "changed": 0, "unchanged": 0, "removed": 0, "failed": []}
    assert seen == [(1, 3), (2, 3), (3, 3)]
    shows.refresh_from_db()
    assert (shows.scan_state, shows.scan_done, shows.scan_total, shows.progress) == ("IDLE", 3, 3, 1.0)
    assert libraries.library_data(shows)["assets"] == 3 and shows.last_scan == summary

    pilot = asset(tree / "shows", PILOT)  # episode .nfo over the name; tvshow.nfo for the show
    assert (pilot.kind, pilot.show, pilot.season, pilot.episode) == ("show", "The Good Show", 1, 1)
    assert pilot.title == "The Pilot"
    assert (pilot.plot, pilot.year, pilot.content_rating) == ("Where it all begins.", 1990, "TV-PG")
    assert (pilot.genres, pilot.tags, pilot.duration_s > 0) == (["Comedy", "Drama"], ["classic"], True)
    assert pilot.artwork == str(tree / "shows/Good Show/poster.jpg")
    second = asset(tree / "shows", SECOND)  # 1x02: the name's title; the show's plot as fallback
    assert (second.episode, second.title, second.plot) == (2, "Second Step", "A show about good things.")
    double = asset(tree / "shows", DOUBLE)  # nothing after S1E3E4: the embedded title
    assert (double.season, double.episode, double.episode_end, double.title) == (1, 3, 4, "Tagged Title")
    assert double.genres == ["Comedy", "Drama"]  # tvshow.nfo's genres over the tags'

    assert scan_library(movies)["new"] == 1
    movie = asset(tree / "movies", MOVIE)
    assert (movie.kind, movie.title, movie.year, movie.plot) == ("movie", "Big Movie", 1985, "Big things happen.")
    assert (movie.genres, movie.tags, movie.content_rating) == (["Action", "Adventure"], ["80s"], "PG")
    assert movie.artwork == str(tree / "movies/Big Movie (1985)/fanart.jpg")
    assert movie.chapters == [0.0, 0.4]


@pytest.mark.django_db
def test_rescan_probes_only_what_changed(tree):
    shows = library(tree, "shows")
    scan_library(shows)
    before = {a.source: a.probed_at for a in libraries.library_assets(shows)}
    again = scan_library(shows)
    assert (again["unchanged"], again["new"], again["changed"]) == (3, 0, 0)
    assert {a.source: a.probed_at for a in libraries.library_assets(shows)} == before

    replaced = tree / "shows" / SECOND
    shutil.copyfile(TEMPLATES / "longer.mp4", replaced)
    touched_nfo = (tree / "shows" / PILOT).with_suffix(".nfo")
    touched_nfo.write_text(PILOT_NFO.replace("The Pilot", "The Real Pilot"))
    third = scan_library(shows)
    assert (third["unchanged"], third["changed"]) == (1, 2)
    after = {a.source: a for a in libraries.library_assets(shows)}
    assert after[str(replaced)].duration_s == pytest.approx(2, abs=0.1)
    assert after[str(tree / "shows" / PILOT)].title == "The Real Pilot"
    assert after[str(tree / "shows" / DOUBLE)].probed_at == before[str(tree / "shows" / DOUBLE)]


@pytest.mark.django_db
def test_removed_file_is_marked_and_never_aired(tree):
    shows = library(tree, "shows")
    scan_library(shows)
    pilot, second = (tree / "shows" / PILOT, tree / "shows" / SECOND)
    playlist_channel = make_channel(901, playlist=[str(pilot), str(second)])
    scheduled = make_channel(902)
    replace_schedule(scheduled, {"loop": True, "programs": [{"asset": asset(tree / "shows", PILOT).pk},
                                                            {"asset": asset(tree / "shows", SECOND).pk}]})
    kept = pilot.with_name("kept.bak")
    os.rename(pilot, kept)
    summary = scan_library(shows)
    assert (summary["removed"], summary["unchanged"]) == (1, 2)
    assert asset(tree / "shows", PILOT).missing_since is not None
    assert libraries.library_data(shows)["assets"] == 2
    for channel in (playlist_channel, scheduled):
        aired = {s.source for s in channel_segments(channel, hours=0.02)}
        assert str(pilot) not in aired and str(second) in aired

    os.rename(kept, pilot)  # back as it was: cleared without a probe
    back = scan_library(shows)
    assert (back["unchanged"], back["removed"]) == (3, 0)
    assert asset(tree / "shows", PILOT).missing_since is None
    assert str(pilot) in {s.source for s in channel_segments(playlist_channel, hours=0.02)}


@pytest.mark.django_db
def test_bad_nfo_and_unreadable_file_do_not_stop_the_scan(tree):
    shows = library(tree, "shows")
    (tree / "shows" / PILOT).with_suffix(".nfo").write_text("<episodedetails><title>Broken</episodedetails>")
    (tree / "shows/Good Show/tvshow.nfo").write_text('<!DOCTYPE tvshow SYSTEM "file:///etc/passwd"><tvshow/>')
    (tree / "shows" / SHOW / "junk.mkv").write_text("not a video\n")
    summary = scan_library(shows)
    assert summary["new"] == 3 and [f["path"] for f in summary["failed"]] == [str(tree / "shows" / SHOW / "junk.mkv")]
    assert "ffprobe" in summary["failed"][0]["reason"]
    reasons = {w["path"]: w["reason"] for w in summary["warnings"]}
    assert "not well-formed" in reasons[str((tree / "shows" / PILOT).with_suffix(".nfo"))]
    assert "DOCTYPE" in reasons[str(tree / "shows/Good Show/tvshow.nfo")]
    pilot = asset(tree / "shows", PILOT)  # the name's metadata stands
    assert (pilot.show, pilot.title, pilot.episode) == ("Good Show", "Pilot", 1)


@pytest.mark.django_db
def test_one_scan_at_a_time_and_a_failed_scan_says_why(tree):
    shows = library(tree, "shows")
    Library.objects.filter(pk=shows.pk).update(scan_state=Library.ScanState.SCANNING)
    assert scan_library(shows) is None and not libraries.library_assets(shows).exists()
    Library.objects.filter(pk=shows.pk).update(scan_state=Library.ScanState.IDLE)
    shutil.rmtree(tree / "shows")
    with pytest.raises(ConfigError):
        scan_library(shows)
    shows.refresh_from_db()
    assert shows.scan_state == "FAILED" and "does not exist" in shows.scan_error


@pytest.mark.django_db
def test_library_fields_are_checked_each_with_its_reason(tree, tmp_path):
    first = library(tree, "shows")
    with pytest.raises(ConfigError) as refused:
        libraries.create_library({"name": first.name, "path": str(tmp_path), "kind": "music", "extra": 1})
    assert set(refused.value.errors) == {"name", "path", "kind", "extra"}
    assert "outside the media roots" in refused.value.errors["path"][0]
    with pytest.raises(ConfigError) as taken:
        libraries.create_library({"name": "Another", "path": str(tree / "shows"), "kind": "shows"})
    assert "already the library" in taken.value.errors["path"][0]
    assert Library.objects.count() == 1

    scan_library(first)
    libraries.update_library(first, {"name": "Renamed", "kind": "other"})
    assert (first.name, first.kind) == ("Renamed", "other")
    assert scan_library(first)["changed"] == 3  # another kind: every file read again
    assert asset(tree / "shows", PILOT).kind == ""
    with pytest.raises(ConfigError) as moved:
        libraries.update_library(first, {"path": str(tree / "movies")})
    assert list(moved.value.errors) == ["path"]
    libraries.delete_library(first)
    assert MediaAsset.objects.filter(source__startswith=str(tree)).count() == 3
