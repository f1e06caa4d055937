"""Test data: channels built from one factory, so every test states only what it is about.

A channel gets a name from its number and, given a `port`, a loopback output there (tests never
send anywhere else); everything else (quality, playlist, config sections) is passed as given
and checked by the same service as every client's."""
from django.contrib.auth.models import Permission, User
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

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


APPS = ("channels_app", "streams_app", "resources_app", "notifications_app", "library_app")


def make_user(username, permissions=None, staff=False):
    """A user with RetroVue's model permissions: "all", "view" (the view_* ones) or None."""
    user = User.objects.create_user(username, password="pw", is_staff=staff)
    if permissions:
        granted = Permission.objects.filter(content_type__app_label__in=APPS)
        if permissions == "view":
            granted = granted.filter(codename__startswith="view_")
        user.user_permissions.set(granted)
    return user


def token_client(user):
    """An API client that authenticates as `user` with its token."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client
