"""Test data: channels built from one factory, so every test states only what it is about.

A channel gets a name from its number and, given a `port`, a loopback output there (tests never
send anywhere else); everything else (quality, playlist, config sections) is passed as given
and checked by the same service as every client's."""
from channels_app import services


def loopback(port):
    return {"multicast_address": "127.0.0.1", "port": port, "protocol": "udp"}


def channel_payload(number, *, name=None, port=None, **fields):
    """A valid create-channel body (for the API, the services or the CLI)."""
    body = {"name": name or f"Channel {number}", "number": number, **fields}
    if port is not None:
        body["network_settings"] = {**loopback(port), **body.get("network_settings", {})}
    return body


def make_channel(number, **fields):
    """A channel created through the service layer, as the API would."""
    return services.create_channel(channel_payload(number, **fields))
