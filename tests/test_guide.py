"""The guide as clients and operators read it: XMLTV programmes carrying their assets' metadata
(read back by lxml against the real XMLTV DTD), artwork served from the media roots only, the
M3U's channel numbers, the /guide page, and the guide's cost for 50 channels over two days."""
import subprocess
from datetime import timedelta

import pytest
from django.utils import timezone
from lxml import etree

from channels_app.models import Channel, MediaAsset, Program, Schedule
from streams_app.models import AsRunEntry

from .conftest import MEDIA
from .factories import make_channel, make_user
from .test_iptv import DTD, parse_m3u

ARTWORK = MEDIA / "guide-artwork"


def make_image(path, color="red"):
    """A real tiny picture (JPEG or PNG by the name's extension), made by FFmpeg."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", f"color=c={color}:s=32x18", "-frames:v", "1", str(path)], check=True)
    return path


def episode(**fields):
    return MediaAsset.objects.create(**{
        "source": "/m/cadets/S01E02.mkv", "title": "The Pilot's Return", "duration_s": 1800, "kind": "show",
        "show": "Space Cadets", "season": 1, "episode": 2, "plot": "They come back & nobody notices.",
        "genres": ["Comedy", "Sci-Fi"], "year": 1987, "content_rating": "TV-14", **fields})


def movie(**fields):
    return MediaAsset.objects.create(**{
        "source": "/m/films/big.mkv", "title": "The Big Film", "duration_s": 3600, "kind": "movie",
        "plot": "A long one.", "genres": ["Drama"], "year": 1984, "content_rating": "PG", **fields})


def scheduled(channel, *programs):
    """A current schedule of (asset, start) programs; start None follows the previous one."""
    schedule = Schedule.objects.create(channel=channel)
    Program.objects.bulk_create(Program(schedule=schedule, position=n, asset=asset, start=start)
                                for n, (asset, start) in enumerate(programs))
    Channel.objects.filter(pk=channel.pk).update(current_schedule=schedule)
    return schedule


def guide(client, **query):
    response = client.get("/iptv/xmltv.xml", query)
    assert response.status_code == 200
    doc = etree.fromstring(response.content, etree.XMLParser(resolve_entities=False, no_network=True))
    dtd = etree.DTD(str(DTD))
    assert dtd.validate(doc), dtd.error_log.filter_from_errors()
    return doc


def programme_fields(programme):
    """A programme's children as (tag, attributes, text), in document order."""
    return [(child.tag, dict(child.attrib), child.text or [(c.tag, c.text) for c in child]) for child in programme]


@pytest.mark.django_db
def test_xmltv_programmes_carry_episode_and_movie_metadata_in_dtd_order(client):
    now = timezone.now()
    poster = make_image(ARTWORK / "cadets" / "poster.jpg")
    cadets = episode(artwork=str(poster))
    double = episode(source="/m/cadets/S02E03E04.mkv", title="Two Parter", season=2, episode=3, episode_end=4,
                     genres=[], plot="", content_rating="", year=None)
    film = movie()
    channel = make_channel(5, name="Retro")
    scheduled(channel, (cadets, now - timedelta(minutes=10)), (film, None), (double, None), (cadets, None))
    AsRunEntry.objects.create(channel=channel, kind="program", title="The Big Film", asset=film,
                              actual_start=now - timedelta(days=3))  # aired before: not new

    programmes = guide(client).findall("programme")
    starts = [now - timedelta(minutes=10) + timedelta(minutes=m) for m in (0, 30, 90, 120)]
    assert [(p.get("start"), p.get("stop")) for p in programmes[:4]] == [
        (start.strftime("%Y%m%d%H%M%S +0000"), stop.strftime("%Y%m%d%H%M%S +0000"))
        for start, stop in zip(starts, starts[1:] + [starts[3] + timedelta(minutes=30)])]
    icon = f"http://testserver/iptv/artwork/{cadets.pk}.jpg"
    first_airing = [
        ("title", {}, "Space Cadets"), ("sub-title", {}, "The Pilot's Return"),
        ("desc", {}, "They come back & nobody notices."), ("date", {}, "1987"),
        ("category", {}, "Series"), ("category", {}, "Comedy"), ("category", {}, "Sci-Fi"),
        ("icon", {"src": icon}, []), ("episode-num", {"system": "onscreen"}, "S01E02"),
        ("episode-num", {"system": "xmltv_ns"}, "0.1."), ("rating", {}, [("value", "TV-14")])]
    assert programme_fields(programmes[0]) == first_airing
    assert programme_fields(programmes[1]) == [  # a movie: no episode number, so Plex files it as one
        ("title", {}, "The Big Film"), ("desc", {}, "A long one."), ("date", {}, "1984"),
        ("category", {}, "Movie"), ("category", {}, "Drama"), ("previously-shown", {}, []),
        ("rating", {}, [("value", "PG")])]
    assert programme_fields(programmes[2]) == [
        ("title", {}, "Space Cadets"), ("sub-title", {}, "Two Parter"), ("category", {}, "Series"),
        ("episode-num", {"system": "onscreen"}, "S02E03-E04"),
        ("episode-num", {"system": "xmltv_ns"}, "1.2.")]  # xmltv_ns has no ranges: the first
    repeat = programme_fields(programmes[3])
    assert repeat == first_airing[:-1] + [("previously-shown", {}, []), first_airing[-1]]


@pytest.mark.django_db
def test_previously_shown_counts_what_aired_or_airs_earlier_not_plans_a_rebuild_replaced(client):
    now = timezone.now()
    aired, replaced, moved = (movie(source=f"/m/films/{name}.mkv", title=name) for name in ("Aired", "Replaced", "Moved"))
    channel = make_channel(3)
    scheduled(channel, (aired, now - timedelta(days=2)), (moved, now + timedelta(hours=1)),
              (replaced, now + timedelta(hours=3)))  # an older version: only its past programs aired
    scheduled(channel, (aired, now + timedelta(minutes=5)), (replaced, now + timedelta(hours=5)),
              (moved, now + timedelta(hours=6)))
    shown = {p.findtext("title"): p.find("previously-shown") is not None
             for p in guide(client).iter("programme") if p.findtext("title") in ("Aired", "Replaced", "Moved")}
    assert shown == {"Aired": True, "Replaced": False, "Moved": False}


@pytest.mark.django_db
def test_artwork_is_served_with_cache_headers_from_the_media_roots_only(client, settings, tmp_path):
    poster = make_image(ARTWORK / "film" / "poster.png", color="blue")
    film = movie(artwork=str(poster))
    url = f"/iptv/artwork/{film.pk}.png"
    response = client.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert response.content == poster.read_bytes()
    assert response["Cache-Control"] == "public, max-age=3600" and response["Last-Modified"]
    assert client.get(url, HTTP_IF_NONE_MATCH=response["ETag"]).status_code == 304

    outside = make_image(tmp_path / "poster.jpg")
    (ARTWORK / "escape.jpg").unlink(missing_ok=True)
    (ARTWORK / "escape.jpg").symlink_to(outside)
    (ARTWORK / "notes.txt").write_text("not a picture")
    refused = {"none": movie(source="/m/a.mkv"), "outside": movie(source="/m/b.mkv", artwork=str(outside)),
               "link out": movie(source="/m/c.mkv", artwork=str(ARTWORK / "escape.jpg")),
               "not an image": movie(source="/m/d.mkv", artwork=str(ARTWORK / "notes.txt")),
               "gone": movie(source="/m/e.mkv", artwork=str(ARTWORK / "gone.jpg"))}
    for reason, asset in refused.items():
        assert client.get(f"/iptv/artwork/{asset.pk}.jpg").status_code == 404, reason
    assert client.get(f"/iptv/artwork/{film.pk}.jpg").status_code == 404, "the file's own extension only"
    assert client.get("/iptv/artwork/999999.png").status_code == 404

    settings.RETROVUE_IPTV_TOKEN = "s3cret"
    assert client.get(url).status_code == 403
    make_channel(1)
    scheduled(Channel.objects.get(number=1), (film, timezone.now() - timedelta(minutes=1)))
    icon = guide(client, token="s3cret").find("programme/icon").get("src")
    assert icon == f"http://testserver/iptv/t/s3cret/artwork/{film.pk}.png"
    assert client.get(icon).content == poster.read_bytes()


@pytest.mark.django_db
def test_m3u_numbers_channels_for_players_and_keeps_odd_names_parseable(client):
    make_channel(12, name='Late, "Late" Show')
    header, entries = parse_m3u(client.get("/iptv/channels.m3u").content.decode())
    assert [(e["tvg-chno"], e["tvg-id"], e["tvg-name"], e["name"]) for e in entries] == [
        ("12", "retrovue.12", "Late, 'Late' Show", 'Late\u201a "Late" Show')]
    assert guide(client).find("channel").get("id") == entries[0]["tvg-id"]


@pytest.mark.django_db
def test_guide_page_draws_programmes_on_a_time_grid_for_logged_in_users(client):
    start = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(days=1)
    cadets = episode(artwork=str(make_image(ARTWORK / "cadets" / "poster.jpg")))
    scheduled(make_channel(1, name="Cartoons"), (cadets, start + timedelta(minutes=30)), (movie(), None))
    make_channel(2, name="Empty")
    query = {"start": start.isoformat(), "hours": "2"}
    assert client.get("/guide", query).status_code == 302
    assert client.get("/guide")["Location"] == "/admin/login/?next=/guide"

    client.force_login(make_user("viewer", "view"))
    page = client.get("/guide", query)
    assert page.status_code == 200
    html = page.content.decode()
    # 30 min into a 2 h window, 30 min long: a quarter in, a quarter wide; then the hour-long film.
    assert 'style="left: 25.0%; width: 25.0%"' in html and 'style="left: 50.0%; width: 50.0%"' in html
    for shown in ("Space Cadets", "S01E02", "The Pilot&#x27;s Return", "They come back &amp; nobody notices.",
                  "Series, Comedy, Sci-Fi", "1987", "TV-14", "The Big Film", "Cartoons", "Empty",
                  f'src="/iptv/artwork/{cadets.pk}.jpg"', "<details", 'href="/guide"'):
        assert shown in html, shown
    assert client.get("/guide").status_code == 200, "now and the next four hours by default"
    for bad, reason in [({"hours": "abc"}, "hours"), ({"hours": "25"}, "hours"), ({"hours": "\u00b2"}, "hours"),
                        ({"start": "soon"}, "start"), ({"start": "9999-12-31T23:00"}, "start")]:
        refused = client.get("/guide", bad)
        assert refused.status_code == 400 and f"{reason}: " in refused.content.decode(), bad


@pytest.mark.django_db
def test_a_rendered_guide_is_served_again_until_a_schedule_changes(client):
    from channels_app.schedules import replace_schedule

    channel = make_channel(61, name="Cached")
    asset = movie(title="First Feature", source=str(MEDIA / "guide" / "first.mp4"))
    replace_schedule(channel, {"programs": [{"asset": asset.pk, "start": timezone.now().isoformat()}]})
    first = client.get("/iptv/xmltv.xml").content
    assert b"First Feature" in first
    MediaAsset.objects.filter(pk=asset.pk).update(title="Renamed Feature")  # no schedule changed
    assert client.get("/iptv/xmltv.xml").content == first
    replace_schedule(Channel.objects.get(pk=channel.pk), {"programs": [
        {"asset": asset.pk, "start": timezone.now().isoformat(), "title": "Second Feature"}]})
    assert b"Second Feature" in client.get("/iptv/xmltv.xml").content
