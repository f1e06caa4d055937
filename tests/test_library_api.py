"""Libraries, collections and programming through the API, the CLI and the admin, with a real
worker scanning and the real services behind each."""
import json
import re

import pytest

from channels_app.models import MediaAsset
from library_app.models import Library

from .conftest import MEDIA, make_clip
from .factories import make_channel, make_user, token_client
from .helpers import wait_for
from .test_cli import retrovue


def show_tree(name):
    """A show in the layout people have: two episodes and a tvshow.nfo."""
    folder = MEDIA / name / "Space Patrol"
    for episode in (1, 2):
        make_clip(folder / "Season 01" / f"Space Patrol - S01E0{episode} - Part {episode}.mp4", 1, size="160x120")
    (folder / "tvshow.nfo").write_text("<tvshow><title>Space Patrol</title><genre>Science Fiction</genre>"
                                       "<mpaa>TV-G</mpaa></tvshow>")
    return MEDIA / name


@pytest.mark.django_db(transaction=True)
def test_a_library_added_through_the_api_is_scanned_by_a_worker(live_host):
    api = token_client(make_user("librarian", permissions="all"))
    root = show_tree("api-shows")
    refused = api.post("/api/libraries", {"name": "Shows", "path": "/etc", "kind": "sitcoms", "extra": 1},
                       format="json")
    assert refused.status_code == 400 and {"path", "kind", "extra"} <= set(refused.json()), refused.json()
    assert not Library.objects.exists(), "nothing written"
    added = api.post("/api/libraries", {"name": "Shows", "path": str(root), "kind": "shows"}, format="json")
    assert added.status_code == 201 and added.json()["scan_state"] in ("QUEUED", "SCANNING", "IDLE"), added.json()
    number = added.json()["id"]
    wait_for(lambda: api.get(f"/api/libraries/{number}").json()["scan_state"] == "IDLE", timeout=30,
             what="the worker's scan")
    done = api.get(f"/api/libraries/{number}").json()
    assert (done["assets"], done["progress"], done["last_scan"]["new"]) == (2, 1.0, 2), done
    episode = MediaAsset.objects.get(episode=2)
    assert (episode.show, episode.season, episode.title, episode.genres, episode.content_rating) == (
        "Space Patrol", 1, "Part 2", ["Science Fiction"], "TV-G")
    again = api.post(f"/api/libraries/{number}/scan")
    assert again.status_code == 202
    wait_for(lambda: Library.objects.get(pk=number).scan_state == "IDLE" and
             Library.objects.get(pk=number).last_scan.get("unchanged") == 2, timeout=30, what="the rescan")
    assert api.patch(f"/api/libraries/{number}", {"path": "/tmp"}, format="json").status_code == 400


@pytest.mark.django_db(transaction=True)
def test_the_cli_adds_a_library_with_progress_and_refuses_bad_input_in_one_line():
    root = show_tree("cli-shows")
    bad = retrovue("library", "add", "Shows", str(root), "--kind", "sitcoms")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "kind" in bad.stderr, bad.stderr
    done = retrovue("library", "add", "Shows", str(root), "--kind", "shows", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert (data["scan_state"], data["assets"]) == ("IDLE", 2), data
    listed = retrovue("library", "list")
    assert "Shows" in listed.stdout and listed.returncode == 0


@pytest.mark.django_db
def test_the_admin_adds_libraries_collections_and_programming_through_the_services(admin_client, settings):
    settings.RETROVUE_PROGRAMMING_HOURS = 1  # the episodes are 1 s clips
    from channels_app.models import Channel
    from library_app.models import ChannelProgramming, Collection

    root = show_tree("admin-shows")
    refused = admin_client.post("/admin/library_app/library/add/", {"name": "Shows", "path": "/etc", "kind": "shows"})
    assert refused.status_code == 200 and b"media roots" in refused.content and not Library.objects.exists()
    added = admin_client.post("/admin/library_app/library/add/", {"name": "Shows", "path": str(root), "kind": "shows"})
    assert added.status_code == 302, re.findall(rb"errorlist.{0,300}", added.content)
    assert Library.objects.get().scan_state == "QUEUED"
    from library_app import scanning

    scanning.scan_library(Library.objects.get())
    bad = admin_client.post("/admin/library_app/collection/add/", {"name": "All", "definition": '{"query": {"year": 5}}'})
    assert bad.status_code == 200 and b"year" in bad.content and not Collection.objects.exists()
    assert admin_client.post("/admin/library_app/collection/add/", {
        "name": "All", "definition": '{"query": {"show": "Space Patrol"}}'}).status_code == 302
    channel = make_channel(9)
    rules = {"timezone": "UTC", "default": {"collection": "All", "order": "chronological"}}
    wrong = admin_client.post("/admin/library_app/channelprogramming/add/", {
        "channel": channel.pk, "rules": json.dumps({**rules, "default": {"collection": "All", "order": "sideways"}})})
    assert wrong.status_code == 200 and b"sideways" in wrong.content and not ChannelProgramming.objects.exists()
    done = admin_client.post("/admin/library_app/channelprogramming/add/", {"channel": channel.pk,
                                                                           "rules": json.dumps(rules)})
    assert done.status_code == 302, done.content[:2000]
    assert ChannelProgramming.objects.get().built_until and Channel.objects.get(pk=channel.pk).current_schedule
