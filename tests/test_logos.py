"""Channel logos and groups end to end, on real PNG and JPEG files made by FFmpeg: uploaded
through the API (raw and multipart) and the admin, served to players, listed in the M3U (read by
test_iptv's strict parser) and the XMLTV guide (validated against the DTD); every refusal writes
nothing, and replacing or deleting leaves no file behind."""
import json
import subprocess

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import transaction
from lxml import etree

from channels_app import logos
from channels_app.models import Channel

from .factories import make_channel
from .test_admin import CHANNELS, change_form
from .test_iptv import DTD, parse_m3u


def ffmpeg_image(folder, name):
    """A 64x64 red picture in the format its name says, made by FFmpeg."""
    path = folder / name
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
                    "-i", "color=c=red:size=64x64", "-frames:v", "1", str(path)], check=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    return {kind: ffmpeg_image(folder, f"logo.{kind}") for kind in ("png", "jpg", "gif")}


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path):
    settings.RETROVUE_DATA_DIR = tmp_path
    return tmp_path


def stored(data_dir):
    """The files in the logos folder, temporary ones included."""
    folder = data_dir / "logos"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def put_raw(api, number, data, content_type):
    return api.generic("PUT", f"/api/channels/{number}/logo", data, content_type=content_type)


def put_multipart(api, number, data, filename):
    return api.put(f"/api/channels/{number}/logo", {"logo": SimpleUploadedFile(filename, data)}, format="multipart")


def test_the_header_check_reads_the_size_of_ffmpeg_s_images(images):
    assert logos.image_kind(images["png"]) == ("png", 64, 64)
    assert logos.image_kind(images["jpg"]) == ("jpg", 64, 64)


@pytest.mark.django_db(transaction=True)  # files go once the change commits
def test_raw_and_multipart_uploads_are_served_and_replace_each_other(api, client, images, data_dir):
    channel = make_channel(3)
    response = put_raw(api, 3, images["png"], "image/png")
    assert response.status_code == 200, response.content
    assert response.json()["logo"] == "/iptv/logos/3.png"
    assert stored(data_dir) == [f"{channel.id}.png"]
    served = client.get("/iptv/logos/3.png")
    assert served.status_code == 200 and served.content == images["png"]
    assert served["Content-Type"] == "image/png" and "max-age=3600" in served["Cache-Control"]
    assert client.get("/iptv/logos/3.png", HTTP_IF_NONE_MATCH=served["ETag"]).status_code == 304
    assert client.get("/iptv/logos/3.jpg").status_code == 404

    response = put_multipart(api, 3, images["jpg"], "logo.jpg")
    assert response.status_code == 200 and response.json()["logo"] == "/iptv/logos/3.jpg"
    assert stored(data_dir) == [f"{channel.id}.jpg"], "the replaced PNG is removed"
    served = client.get("/iptv/logos/3.jpg")
    assert served.content == images["jpg"] and served["Content-Type"] == "image/jpeg"
    assert client.get("/iptv/logos/3.png").status_code == 404
    assert client.get("/iptv/logos/4.png").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("upload", ["text named .png", "gif", "gif as png", "2 MB", "empty", "cut png",
                                    "json"])
def test_refused_uploads_are_400_on_logo_and_write_nothing(api, images, data_dir, upload):
    channel = make_channel(3)
    put_raw(api, 3, images["png"], "image/png")
    before = (data_dir / "logos" / f"{channel.id}.png").read_bytes()
    response = {
        "text named .png": lambda: put_multipart(api, 3, b"not a picture\n", "logo.png"),
        "gif": lambda: put_raw(api, 3, images["gif"], "image/gif"),
        "gif as png": lambda: put_multipart(api, 3, images["gif"], "logo.png"),
        "2 MB": lambda: put_raw(api, 3, images["png"] + bytes(2 * 1024 * 1024), "image/png"),
        "empty": lambda: put_raw(api, 3, b"", "image/png"),
        "cut png": lambda: put_raw(api, 3, images["png"][:20], "image/png"),
        "json": lambda: api.put("/api/channels/3/logo", {"logo": "x.png"}, format="json"),
    }[upload]()
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["logo"]
    assert stored(data_dir) == [f"{channel.id}.png"]
    assert (data_dir / "logos" / f"{channel.id}.png").read_bytes() == before
    assert Channel.objects.get(number=3).logo == f"{channel.id}.png"


@pytest.mark.django_db(transaction=True)  # files go once the change commits
def test_removing_the_logo_or_the_channel_removes_its_file(api, client, images, data_dir):
    make_channel(3)
    put_raw(api, 3, images["png"], "image/png")
    assert api.delete("/api/channels/3/logo").status_code == 204
    assert stored(data_dir) == [] and client.get("/iptv/logos/3.png").status_code == 404
    assert api.get("/api/channels/3").json()["logo"] is None
    put_raw(api, 3, images["jpg"], "image/jpeg")
    assert api.delete("/api/channels/3").status_code == 204
    assert stored(data_dir) == []


@pytest.mark.django_db
def test_m3u_and_guide_carry_logos_and_groups(api, client, images):
    make_channel(1, name='One, "the first"', group='News, "Local"')
    make_channel(2)
    put_raw(api, 1, images["png"], "image/png")
    header, entries = parse_m3u(client.get("/iptv/channels.m3u").content.decode())
    assert entries[0] == {
        "duration": -1, "tvg-id": "retrovue.1", "tvg-name": "One, 'the first'", "tvg-chno": "1",
        "tvg-logo": "http://testserver/iptv/logos/1.png", "group-title": "News, 'Local'",
        "name": 'One\u201a "the first"', "url": "http://testserver/iptv/channels/1.ts"}
    assert "tvg-logo" not in entries[1] and entries[1]["group-title"] == "RetroVue"
    assert client.get(entries[0]["tvg-logo"]).content == images["png"]

    guide = etree.fromstring(client.get(header["url-tvg"]).content)
    dtd = etree.DTD(str(DTD))
    assert dtd.validate(guide), dtd.error_log.filter_from_errors()
    icons = {c.get("id"): [i.get("src") for i in c.iter("icon")] for c in guide.iter("channel")}
    assert icons == {"retrovue.1": [entries[0]["tvg-logo"]], "retrovue.2": []}


@pytest.mark.django_db
def test_with_an_iptv_token_logos_need_it_and_listed_urls_carry_it(api, client, images, settings):
    settings.RETROVUE_IPTV_TOKEN = "s3cret"
    make_channel(1)
    put_raw(api, 1, images["png"], "image/png")
    assert client.get("/iptv/logos/1.png").status_code == 403
    _, entries = parse_m3u(client.get("/iptv/t/s3cret/channels.m3u").content.decode())
    assert entries[0]["tvg-logo"] == "http://testserver/iptv/t/s3cret/logos/1.png"
    assert client.get(entries[0]["tvg-logo"]).content == images["png"]
    guide = etree.fromstring(client.get("/iptv/t/s3cret/xmltv.xml").content)
    assert [i.get("src") for i in guide.iter("icon")] == [entries[0]["tvg-logo"]]


@pytest.mark.django_db
@pytest.mark.parametrize("group,problem", [("x" * 51, True), ("bell\x07", True), ("two\nlines", True),
                                           ("Sport, \"Live\"", False), ("", False)])
def test_group_is_validated_on_create_and_update(api, group, problem):
    created = api.post("/api/channels", {"name": "One", "number": 1, "group": group}, format="json")
    assert (created.status_code == 400) == problem, created.content
    if problem:
        assert list(created.json()) == ["group"] and not Channel.objects.exists()
        make_channel(1)
    else:
        assert created.json()["group"] == group
    changed = api.put("/api/channels/1/config", {"group": group}, format="json")
    assert (changed.status_code == 400) == problem
    assert (Channel.objects.get(number=1).group == group) != problem


@pytest.mark.django_db
def test_cli_sets_the_group_on_create_and_configure(capsys):
    call_command("channel", "create", "Local", "--number", "5", "--group", "News", "--json")
    assert json.loads(capsys.readouterr().out)["group"] == "News"
    call_command("channel", "configure", "5", "--group", "Sport, Live")
    assert Channel.objects.get(number=5).group == "Sport, Live"
    with pytest.raises(CommandError, match="group") as refused:
        call_command("channel", "configure", "5", "--group", "x" * 60)
    assert refused.value.returncode == 2 and Channel.objects.get(number=5).group == "Sport, Live"


@pytest.mark.django_db(transaction=True)  # files go once the change commits
def test_admin_uploads_previews_refuses_and_removes_the_logo(admin_client, images, data_dir):
    channel = make_channel(3)
    url = f"{CHANNELS}{channel.pk}/change/"
    assert 'enctype="multipart/form-data"' in admin_client.get(url).content.decode()
    refused = admin_client.post(url, change_form(channel, logo_file=SimpleUploadedFile("logo.png", images["gif"])))
    assert refused.status_code == 200 and "PNG or JPEG" in refused.content.decode()
    assert stored(data_dir) == []

    response = admin_client.post(url, change_form(channel, group="Kids",
                                                  logo_file=SimpleUploadedFile("logo.jpg", images["jpg"])))
    assert response.status_code == 302, response.content
    assert stored(data_dir) == [f"{channel.id}.jpg"]
    assert (data_dir / "logos" / f"{channel.id}.jpg").read_bytes() == images["jpg"]
    assert Channel.objects.get(pk=channel.pk).group == "Kids"
    assert '<img src="/iptv/logos/3.jpg"' in admin_client.get(url).content.decode()

    assert admin_client.post(url, change_form(channel, group="Kids", remove_logo="on")).status_code == 302
    assert stored(data_dir) == [] and Channel.objects.get(pk=channel.pk).logo == ""


@pytest.mark.django_db(transaction=True)
def test_a_replacement_that_does_not_commit_keeps_the_file_its_record_names(images, data_dir):
    channel = make_channel(3)
    logos.store_logo(channel, images["png"])
    with pytest.raises(RuntimeError), transaction.atomic():
        logos.store_logo(channel, images["jpg"])
        raise RuntimeError("the admin's save failed after the upload")
    assert Channel.objects.get(pk=channel.pk).logo == f"{channel.id}.png"
    assert f"{channel.id}.png" in stored(data_dir)
