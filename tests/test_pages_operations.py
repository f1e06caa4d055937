"""Operations on the pages: each channel's health verdict, CPU and memory on /channels (the verdict
/streams shows), and allocate / release on /resources through the services the API calls. Real
rows and Django's client with CSRF, no worker and no FFmpeg."""
import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from channels_app.models import Channel
from resources_app import services as resources
from resources_app.models import EncodeHost, ResourceAllocation
from streams_app.models import MetricSample, Stream

from .factories import make_channel, make_user
from .test_dashboards import cost

pytestmark = pytest.mark.django_db
LIMITS = {"resource_limits": {"max_cpu_percent": 150, "max_memory_mb": 512, "max_bandwidth_mbps": 5}}
STEADY = {"speed": 1.0, "fps": 25.0, "bitrate_kbps": 2000.0, "drop_frames": 0}


@pytest.fixture(autouse=True)
def patient_leases(settings):
    """No supervisor heartbeats here: keep the hand-made runs' leases fresh however slow the test."""
    settings.RETROVUE_HEARTBEAT_SECONDS = 60
    settings.RETROVUE_LEASE_TTL_SECONDS = 300


def running(number, drop_frames_a_minute_ago=None, **metrics):
    """A channel whose current run heartbeats now with `metrics` as its latest progress."""
    channel = make_channel(number, **LIMITS)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.RUNNING,
                                                 desired_state=Channel.Desired.RUNNING)
    now = timezone.now()
    run = Stream.objects.create(channel=channel, host="enc-1", generation=channel.generation,
                                status=Stream.Status.RUNNING, started_at=now, heartbeat_at=now,
                                health_metrics={**STEADY, **metrics})
    if drop_frames_a_minute_ago is not None:
        MetricSample.objects.create(stream=run, channel=channel, at=now - timedelta(seconds=50),
                                    drop_frames=drop_frames_a_minute_ago)
    return channel


def failed(number):
    channel = make_channel(number, **LIMITS)
    Channel.objects.filter(pk=channel.pk).update(status=Channel.Status.ERROR, status_reason="ffmpeg exited with 1")
    Stream.objects.create(channel=channel, host="enc-1", generation=channel.generation, status=Stream.Status.ERROR,
                          health_metrics={**STEADY, "cpu_percent": 99.0})
    return channel


def host():
    """A live 2-core, 4 GiB host."""
    return EncodeHost.objects.create(name="enc-1", cpu_count=2, memory_mb=4096, capacity=8,
                                     bandwidth_mbps=1000, last_heartbeat=timezone.now())


def slot(html, name):
    """The inner HTML of the element with data-slot=`name`, whitespace collapsed."""
    found = re.search(rf'data-slot="{name}">(.*?)</td>', html, re.S)
    assert found, name
    return " ".join(found.group(1).split())


def test_channels_show_the_streams_verdict_with_cpu_and_memory(admin_client):
    running(1, cpu_percent=40.2, memory_mb=300.0)
    running(2, cpu_percent=180.0, memory_mb=200.0, drop_frames=25, drop_frames_a_minute_ago=10)
    failed(3)
    make_channel(4)
    html = admin_client.get("/channels/live").content.decode()

    assert ">HEALTHY<" in slot(html, "health-1")
    assert slot(html, "usage-1") == ('<div>40%<span class="muted small"> of 150%</span></div>'
                                     '<div>300 MB<span class="muted small"> of 512 MB</span></div>')
    degraded = slot(html, "health-2")
    assert ">DEGRADED<" in degraded and "dropping frames (15 recently)" in degraded
    assert "cpu_percent 180% over its limit 150%" in degraded
    assert slot(html, "usage-2").startswith('<div class="over">180%')
    assert ">FAILED<" in slot(html, "health-3") and "ffmpeg exited with 1" in slot(html, "health-3")
    assert slot(html, "usage-3").startswith("<div>—")  # a finished run's last report is not its use now
    assert ">STOPPED<" in slot(html, "health-4")
    assert "CPU · memory" in admin_client.get("/channels").content.decode()

    # The very verdicts and reasons /streams shows for the same channels.
    on_channels = {row["channel"].number: (row["health"]["verdict"], row["health"]["reasons"])
                   for row in admin_client.get("/channels/live").context["rows"]}
    on_streams = {row["channel"].number: (row["verdict"], row["reasons"])
                  for row in admin_client.get("/streams/table").context["rows"]}
    assert on_streams == {number: on_channels[number] for number in (1, 2, 3)}


def test_channels_poll_with_health_costs_the_same_queries_for_more_runs(admin_client,
                                                                        django_assert_max_num_queries):
    for number in (1, 2):
        running(number, cpu_percent=50.0, memory_mb=100.0, drop_frames=3, drop_frames_a_minute_ago=1)
    few = cost(admin_client, "/channels/live")
    for number in range(3, 13):
        running(number, cpu_percent=50.0, memory_mb=100.0, drop_frames=3, drop_frames_a_minute_ago=1)
    with django_assert_max_num_queries(few):
        page = admin_client.get("/channels/live")
    assert page.content.decode().count(">DEGRADED<") == 12  # every run dropping frames, each judged


def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def token(page):
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)


def allocations():
    return {row.channel.number: resources.allocation_data(row)
            for row in ResourceAllocation.objects.select_related("channel", "host")}


def test_allocate_and_release_from_the_page_write_what_the_api_writes(admin_user, admin_client):
    host()
    make_channel(1, **LIMITS)
    make_channel(2, **LIMITS)
    client = csrf_client(admin_user)
    page = client.get("/resources")
    assert 'action="/resources/allocate"' in page.content.decode()
    amounts = {"cpu": "0.5", "memory_mb": "1g", "bandwidth_mbps": ""}  # blank: the channel's own
    response = client.post("/resources/allocate", {"channel": "1", **amounts, "next": "/resources",
                                                   "csrfmiddlewaretoken": token(page)})
    assert response.status_code == 302 and response["Location"] == "/resources"
    assert admin_client.post("/api/resources/allocate", {"channel": 2, "cpu": "0.5", "memory_mb": "1g"},
                             content_type="application/json").status_code == 200
    held = allocations()
    assert {**held[1], "channel": 2} == held[2]
    assert (held[1]["cpu_percent"], held[1]["memory_mb"], held[1]["bandwidth_mbps"]) == (50, 1024, 5)

    page = client.get("/resources")
    html = page.content.decode()
    assert "channel 1: reserved 0.5 cores, 1024 MB, 5 Mbit/s on enc-1" in html
    assert html.count('action="/resources/release"') == 2
    response = client.post("/resources/release", {"channel": "1", "next": "/resources",
                                                  "csrfmiddlewaretoken": token(page)}, follow=True)
    assert "channel 1: reservation released" in response.content.decode()
    assert list(allocations()) == [2]
    assert client.post("/resources/release", {"channel": "1"}).status_code == 403  # no CSRF token


def test_refusals_are_shown_on_the_page_and_write_nothing(admin_client):
    host()
    running(1)
    assert "reserved 1 cores" in admin_client.post(
        "/resources/allocate", {"channel": "1", "cpu": "1"}, follow=True).content.decode()
    before = allocations()
    assert before[1]["running"] is True  # reserved for its run on its own host
    refusals = [
        ({"channel": "1", "cpu": "lots"}, "cpu: &#x27;lots&#x27; is not a number of cores"),
        ({"channel": "1"}, "give at least one of cpu (cores), memory_mb, bandwidth_mbps"),
        ({"channel": "99", "cpu": "1"}, "channel: no channel &#x27;99&#x27;"),
        ({"channel": "1", "cpu": "3"}, "CPU needs 300%"),  # the API's 409 shortfall
    ]
    for form, message in refusals:
        response = admin_client.post("/resources/allocate", {**form, "next": "/resources"})
        assert response.status_code == 302 and response["Location"] == "/resources", form
        page = admin_client.get("/resources").content.decode()
        assert 'class="error">' in page and message in page, (form, message)
        assert allocations() == before, form
    refused = admin_client.post("/resources/release", {"channel": "1"}, follow=True).content.decode()
    assert "channel 1 is running on enc-1; stop it to release its reservation" in refused
    assert allocations() == before


def test_allocate_and_release_need_their_own_permissions(client):
    """Viewers see the reservations and no form, and are refused; allocating does not grant releasing."""
    host()
    make_channel(1, **LIMITS)
    resources.allocate({"channel": 1, "cpu": "0.5"})
    before = allocations()
    viewer = make_user("viewer", "view", staff=True)
    client.force_login(viewer)
    page = client.get("/resources").content.decode()
    assert "Reservations" in page and "0.5 cores" in page
    assert 'action="/resources/allocate"' not in page and 'action="/resources/release"' not in page
    for url in ("/resources/allocate", "/resources/release"):
        assert client.post(url, {"channel": "1", "cpu": "1"}).status_code == 403, url
    assert allocations() == before

    viewer.user_permissions.add(Permission.objects.get(codename="add_resourceallocation"))
    client.force_login(User.objects.get(pk=viewer.pk))  # permissions are cached per user object
    page = client.get("/resources").content.decode()
    assert 'action="/resources/allocate"' in page and 'action="/resources/release"' not in page
    assert client.post("/resources/release", {"channel": "1"}).status_code == 403
    assert client.post("/resources/allocate", {"channel": "1", "cpu": "1"}).status_code == 302
    assert allocations()[1]["cpu_percent"] == 100
