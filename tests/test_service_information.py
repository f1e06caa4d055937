"""Constant bitrate and service information on the UDP output, read from a capture by the
test suite's own TS reader (tsanalysis.py: PAT, SDT and NIT with their CRCs, the rate between
PCRs) and by ffprobe."""
import json
import subprocess

import pytest

from .conftest import wait_status
from .factories import channel_payload
from .helpers import capture, udp_socket
from .tsanalysis import analyze

SMALL = {"resolution": "320x180", "bitrate": "300k", "frame_rate": 25}  # keeps the transcode cheap


def captured(api, tmp_path, payload, seconds=6):
    api.post("/api/channels", payload, format="json")
    number = payload["number"]
    sock = udp_socket(payload["network_settings"]["port"])
    api.post(f"/api/channels/{number}/start")
    wait_status(number, "RUNNING", timeout=20)
    path = capture(sock, seconds, tmp_path / f"{number}.ts")
    api.post(f"/api/channels/{number}/stop")
    return path


def probed_programs(path):
    found = subprocess.run(["ffprobe", "-v", "error", "-show_programs", "-of", "json", str(path)],
                           capture_output=True, text=True, check=True)
    return json.loads(found.stdout)["programs"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("quality,muxrate", [("copy", "3000k"), ("480p", "600k")])
def test_a_cbr_channel_sends_a_constant_rate_with_the_service_information_it_was_given(
        quality, muxrate, api, live_host, media, free_port, tmp_path):
    network = {"mode": "cbr", "muxrate": muxrate, "service_id": 301, "transport_stream_id": 77,
               "original_network_id": 8472, "provider_name": "Kanal Süd"}
    payload = channel_payload(31, name="Kultur & Film", port=free_port, quality=quality,
                              playlist=[str(media["clip"])], network_settings=network,
                              **({} if quality == "copy" else {"stream_settings": SMALL}))
    path = captured(api, tmp_path, payload)
    report = analyze(path.read_bytes())
    assert report.cc_errors == 0 and report.crc_errors == 0
    rate = int(muxrate[:-1]) * 1000
    rates = report.bitrates(window=1.0)
    assert len(rates) >= 4 and all(abs(rate_seen / rate - 1) <= 0.01 for rate_seen in rates), rates
    assert report.pcr_accuracy(rate) <= 500e-9, report.pcr_accuracy(rate)  # each PCR where the rate puts it
    info = report.service_information()
    assert info["transport_stream_id"] == info["sdt_transport_stream_id"] == 77 and info["programs"] == [301]
    assert info["original_network_id"] == info["network_id"] == 8472 and info["nit_streams"] == [(77, 8472)]
    assert info["services"] == [(301, "Kanal Süd", "Kultur & Film")]
    program = probed_programs(path)[0]
    assert program["program_num"] == 301
    assert (program["tags"]["service_name"], program["tags"]["service_provider"]) == ("Kultur & Film", "Kanal Süd")


@pytest.mark.django_db(transaction=True)
def test_by_default_the_service_is_the_channel_number_and_the_rate_follows_the_content(
        api, live_host, media, free_port, tmp_path):
    payload = channel_payload(32, port=free_port, quality="copy", playlist=[str(media["clip"])])
    report = analyze(captured(api, tmp_path, payload).read_bytes())
    info = report.service_information()
    assert info["programs"] == [32] and info["services"] == [(32, "RetroVue", "Channel 32")]
    assert info["transport_stream_id"] == 1 and info["network_id"] == 1
    rates = report.bitrates(window=0.5)  # the control: without CBR the measure does see the rate vary
    assert max(rates) / min(rates) > 1.05, rates
