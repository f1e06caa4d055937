"""The media library: real ffprobe on clips generated with FFmpeg, imports from the CLI and API."""
import functools
import http.server
import ipaddress
import json
import os
import socket
import socketserver
import subprocess
import threading
import time
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from channels_app import media
from channels_app.models import MediaAsset
from retrovue.errors import ConfigError

from .conftest import MEDIA, make_clip
from .test_admin import messages_of
from .test_cli import retrovue

LIBRARY = MEDIA / "library"


def junk(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not a video\n")
    return path


def audio_only(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                        "-i", "sine=sample_rate=44100", "-t", "1", "-c:a", "aac", str(path)], check=True)
    return path


@pytest.fixture(scope="module")
def folder():
    """Two good clips (one nested), a file ffprobe rejects, and a file that is not media by name."""
    clips = [make_clip(LIBRARY / "news.mp4", 2, size="640x360", rate=25),
             make_clip(LIBRARY / "shows" / "cartoon.mkv", 3, rate=30)]
    junk(LIBRARY / "broken.mp4")
    (LIBRARY / "notes.txt").write_text("ignored: not a media extension\n")
    return clips


@pytest.mark.django_db
def test_import_probes_duration_codecs_size_and_rates():
    path = make_clip(MEDIA / "probe" / "testcard.mp4", 2, size="640x360", rate=25)
    asset, created = media.import_media(str(path))
    assert created and asset.source == str(path.resolve()) and asset.title == "testcard"
    assert asset.duration_s == pytest.approx(2, abs=0.1)
    assert (asset.video_codec, asset.audio_codec, asset.resolution) == ("h264", "aac", "640x360")
    assert (asset.frame_rate, asset.audio_sample_rate) == (25.0, 48000)

    MediaAsset.objects.filter(pk=asset.pk).update(title="Test card", duration_s=1)
    again, created = media.import_media(str(path))
    assert not created and again.pk == asset.pk
    assert again.title == "Test card" and again.duration_s == pytest.approx(2, abs=0.1)
    assert MediaAsset.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("make,fragment", [
    (lambda: junk(MEDIA / "junk" / "fake.mp4"), "ffprobe cannot read it: "
                                                 f"{MEDIA / 'junk' / 'fake.mp4'}: Invalid data found"),
    (lambda: audio_only(MEDIA / "junk" / "radio.m4a"), "no video stream"),
    (lambda: MEDIA / "junk" / "missing.mp4", "does not exist"),
    (lambda: "/etc/passwd", "outside the media roots"),
    (lambda: "ftp://example.com/a.mp4", "outside the media roots"),
    (lambda: "http:///a.mp4", "not a valid http(s) URL"),
], ids=["not-media", "audio-only", "missing", "outside-the-roots", "ftp", "bad-url"])
def test_what_cannot_air_is_refused_with_the_reason(make, fragment):
    with pytest.raises(ConfigError) as refused:
        media.import_media(str(make()))
    assert fragment in " ".join(refused.value.errors["path"])
    assert not MediaAsset.objects.exists()


@pytest.mark.django_db
def test_import_command_summarises_and_skips_unchanged_files(folder):
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("media", "import", str(LIBRARY), stdout=out, stderr=StringIO())
    assert failed.value.returncode == 1 and "1 of 3 files" in str(failed.value)
    summary = out.getvalue().splitlines()
    assert summary[0] == "imported 2, skipped 0, failed 1"
    assert summary[1].startswith(f"failed: {LIBRARY / 'broken.mp4'}: ffprobe cannot read it:")
    assert sorted(a.title for a in MediaAsset.objects.all()) == ["cartoon", "news"]
    assert MediaAsset.objects.get(title="cartoon").frame_rate == 30.0

    (LIBRARY / "broken.mp4").unlink()
    out = StringIO()
    call_command("media", "import", str(LIBRARY), "--json", stdout=out)
    assert json.loads(out.getvalue()) == {"imported": [], "skipped": [str(p) for p in folder], "failed": []}

    # A file changed since its probe is probed again.
    later = MediaAsset.objects.get(title="news").probed_at.timestamp() + 60
    os.utime(folder[0], (later, later))
    out = StringIO()
    call_command("media", "import", str(LIBRARY), "--json", stdout=out)
    assert json.loads(out.getvalue())["imported"] == [str(folder[0])]
    junk(LIBRARY / "broken.mp4")

    listed = StringIO()
    call_command("media", "list", "--json", stdout=listed)
    assert [(a["title"], a["resolution"]) for a in json.loads(listed.getvalue())] == [
        ("news", "640x360"), ("cartoon", "320x240")]


@pytest.mark.django_db(transaction=True)
def test_import_command_exit_codes(folder):
    done = retrovue("media", "import", str(LIBRARY), "--json")
    assert done.returncode == 1, done.stderr
    summary = json.loads(done.stdout)
    assert len(summary["imported"]) == 2 and summary["failed"][0]["path"] == str(LIBRARY / "broken.mp4")
    assert "1 of 3 files could not be imported" in done.stderr

    done = retrovue("media", "import", "/etc")
    assert done.returncode == 2
    assert [line for line in done.stderr.splitlines() if line.strip()] == [
        f"CommandError: folder: '/etc' is outside the media roots ({settings.RETROVUE_MEDIA_ROOTS[0]})"]
    assert "news" in retrovue("media", "list").stdout


@pytest.mark.django_db
def test_api_imports_one_path_and_lists(api, folder):
    response = api.post("/api/media", {"path": str(folder[0])}, format="json")
    assert response.status_code == 201, response.data
    assert response.data["source"] == str(folder[0]) and response.data["resolution"] == "640x360"
    assert api.post("/api/media", {"path": str(folder[0])}, format="json").status_code == 200

    listed = api.get("/api/media")
    assert listed.status_code == 200
    assert [(a["id"], a["video_codec"]) for a in listed.data] == [(response.data["id"], "h264")]


@pytest.mark.django_db
@pytest.mark.parametrize("body,field,fragment", [
    ({"path": str(LIBRARY / "broken.mp4")}, "path", "Invalid data found when processing input"),
    ({"path": "/etc/passwd"}, "path", "outside the media roots"),
    ({"path": None}, "path", "must be a file path"),
    ({"path": "x", "title": "y"}, "title", "unknown field"),
], ids=["broken", "outside-the-roots", "no-path", "unknown-field"])
def test_api_import_refusals_are_400(api, folder, body, field, fragment):
    response = api.post("/api/media", body, format="json")
    assert response.status_code == 400
    assert fragment in " ".join(response.data[field]), response.data
    assert not MediaAsset.objects.exists()


@pytest.mark.django_db
def test_admin_lists_media_and_probes_again(admin_client, folder):
    asset, _ = media.import_media(str(folder[1]))
    MediaAsset.objects.filter(pk=asset.pk).update(duration_s=99)
    page = admin_client.get("/admin/channels_app/mediaasset/").content.decode()
    assert "cartoon" in page and '<td class="field-resolution">320x240</td>' in page
    assert '<td class="field-fps">30</td>' in page
    assert admin_client.get(f"/admin/channels_app/mediaasset/{asset.pk}/change/").status_code == 200
    assert admin_client.get("/admin/channels_app/mediaasset/add/").status_code == 403

    response = admin_client.post("/admin/channels_app/mediaasset/", {
        "action": "reprobe", "_selected_action": [str(asset.pk)]})
    assert messages_of(response) == [("success", "cartoon: probed again.")]
    probed = MediaAsset.objects.get(pk=asset.pk)
    assert probed.duration_s == pytest.approx(3, abs=0.1)

    # Editing the title keeps when the file was probed (that decides what a re-import skips).
    response = admin_client.post(f"/admin/channels_app/mediaasset/{asset.pk}/change/", {"title": "Cartoons"})
    assert response.status_code == 302
    edited = MediaAsset.objects.get(pk=asset.pk)
    assert (edited.title, edited.probed_at) == ("Cartoons", probed.probed_at)


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["http://127.0.0.1:6379/", "https://127.0.0.1:6379/", "http://localhost:6379/a.mp4",
                                 "http://169.254.169.254/latest/meta-data/", "http://[::1]/a.mp4",
                                 "http://10.1.2.3/a.mp4", "http://224.0.0.1/a.mp4", "http://0.0.0.0:6379/"])
def test_a_url_on_the_head_end_s_own_networks_is_refused_before_anything_connects(api, url):
    started = time.monotonic()
    response = api.post("/api/media", {"path": url}, format="json")
    assert response.status_code == 400 and response.data["path"][0].startswith("refused:"), response.data
    assert time.monotonic() - started < 2 and not MediaAsset.objects.exists()


class Recorder(http.server.SimpleHTTPRequestHandler):
    hosts = []

    def do_GET(self):
        self.hosts.append(self.headers["Host"])
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.mark.django_db
def test_an_allowed_local_url_is_probed_at_the_address_that_was_checked(api, settings, media):
    settings.RETROVUE_MEDIA_URL_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    handler = functools.partial(Recorder, directory=str(media["clip"].parent))
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), handler) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://localhost:{server.server_address[1]}/{media['clip'].name}"
        try:
            response = api.post("/api/media", {"path": url}, format="json")
        finally:
            server.shutdown()
    assert response.status_code == 201 and response.data["source"] == url, response.data
    # ffprobe connected to 127.0.0.1 itself, naming the host the URL gave
    assert Recorder.hosts and set(Recorder.hosts) == {f"localhost:{server.server_address[1]}"}


@pytest.mark.django_db
def test_what_answers_at_a_url_is_never_echoed(api, settings):
    settings.RETROVUE_MEDIA_URL_NETWORKS = [ipaddress.ip_network("127.0.0.0/8")]
    with socket.create_server(("127.0.0.1", 0)) as listener:
        def answer():
            connection, _ = listener.accept()
            with connection:
                connection.recv(4096)
                connection.sendall(b"-ERR wrong number of arguments for 'get' command\r\n")
        threading.Thread(target=answer, daemon=True).start()
        response = api.post("/api/media", {"path": f"http://127.0.0.1:{listener.getsockname()[1]}/"}, format="json")
    assert response.status_code == 400 and response.data["path"] == ["refused: ffprobe could not read media at that URL"]


@pytest.mark.django_db
def test_a_link_to_a_file_whose_name_holds_control_characters_is_refused_after_resolving(api):
    folder = MEDIA / "links"
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "evil\nfile '/etc/passwd'.mp4"
    make_clip(target, 1)
    link = folder / "innocent.mp4"
    link.unlink(missing_ok=True)
    link.symlink_to(target)
    response = api.post("/api/media", {"path": str(link)}, format="json")
    assert response.status_code == 400 and "control characters" in response.data["path"][0], response.data
    assert not MediaAsset.objects.exists()
