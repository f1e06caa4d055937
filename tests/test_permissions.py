"""Every API endpoint asks for the admin's model permissions, whoever calls it: a user without
permissions may do nothing, a view-only user may read, an operator may act. The table below
holds every route of the API; a route missing from it fails the test."""
import pytest
from django.urls import URLPattern
from rest_framework.test import APIClient

from retrovue import urls

from .factories import make_channel, make_user, token_client

# (method, path, acts): a read needs a view permission, an action add, change or delete.
ENDPOINTS = [
    ("GET", "/api/channels", False),
    ("POST", "/api/channels", True),
    ("POST", "/api/channels/start-all", True),
    ("POST", "/api/channels/stop-all", True),
    ("POST", "/api/channels/restart-failed", True),
    ("GET", "/api/channels/7", False),
    ("DELETE", "/api/channels/7", True),
    ("GET", "/api/channels/7/config", False),
    ("PUT", "/api/channels/7/config", True),
    ("PUT", "/api/channels/7/logo", True),
    ("DELETE", "/api/channels/7/logo", True),
    ("POST", "/api/channels/7/start", True),
    ("POST", "/api/channels/7/stop", True),
    ("GET", "/api/channels/7/schedule", False),
    ("PUT", "/api/channels/7/schedule", True),
    ("POST", "/api/channels/7/switch", True),
    ("GET", "/api/channels/7/programming", False),
    ("PUT", "/api/channels/7/programming", True),
    ("DELETE", "/api/channels/7/programming", True),
    ("GET", "/api/libraries", False),
    ("POST", "/api/libraries", True),
    ("GET", "/api/libraries/7", False),
    ("PATCH", "/api/libraries/7", True),
    ("DELETE", "/api/libraries/7", True),
    ("POST", "/api/libraries/7/scan", True),
    ("GET", "/api/collections", False),
    ("POST", "/api/collections", True),
    ("GET", "/api/collections/7", False),
    ("PUT", "/api/collections/7", True),
    ("DELETE", "/api/collections/7", True),
    ("GET", "/api/media", False),
    ("POST", "/api/media", True),
    ("GET", "/api/config", False),
    ("PUT", "/api/config", True),
    ("PATCH", "/api/config", True),
    ("GET", "/api/streams/7/status", False),
    ("GET", "/api/streams/7/health", False),
    ("GET", "/api/streams/7/metrics", False),
    ("POST", "/api/streams/7/restart", True),
    ("GET", "/api/health", False),
    ("GET", "/api/performance", False),
    ("GET", "/api/availability", False),
    ("GET", "/api/alerts", False),
    ("GET", "/api/viewers", False),
    ("GET", "/api/asrun", False),
    ("GET", "/api/notifications", False),
    ("GET", "/api/notifications/routes", False),
    ("POST", "/api/notifications/routes", True),
    ("GET", "/api/notifications/routes/7", False),
    ("PUT", "/api/notifications/routes/7", True),
    ("PATCH", "/api/notifications/routes/7", True),
    ("DELETE", "/api/notifications/routes/7", True),
    ("POST", "/api/notifications/routes/7/test", True),
    ("GET", "/api/resources/status", False),
    ("GET", "/api/resources/plan", False),
    ("POST", "/api/resources/allocate", True),
    ("POST", "/api/resources/release", True),
    ("POST", "/api/resources/hosts/h1/drain", True),
    ("POST", "/api/resources/hosts/h1/undrain", True),
]
SAMPLE_ARGS = {"<str:ref>": "7", "<str:name>": "h1"}


def routes():
    """(method, path) of every handler of every API route, with sample arguments."""
    found = set()
    for pattern in urls.api:
        assert isinstance(pattern, URLPattern)
        path = "/api/" + str(pattern.pattern)
        for placeholder, value in SAMPLE_ARGS.items():
            path = path.replace(placeholder, value)
        view = pattern.callback.view_class
        found |= {(method.upper(), path) for method in ("get", "post", "put", "patch", "delete") if hasattr(view, method)}
    return found


def test_the_table_holds_every_route_and_every_view_names_its_permissions():
    assert routes() == {(method, path) for method, path, _ in ENDPOINTS}
    for pattern in urls.api:
        view = pattern.callback.view_class
        implemented = {m.upper() for m in ("get", "post", "put", "patch", "delete") if hasattr(view, m)}
        assert implemented <= set(view.permissions), view


def call(client, method, path):
    return client.generic(method, path, data="{}", content_type="application/json")


@pytest.mark.django_db
@pytest.mark.parametrize("method,path,acts", ENDPOINTS, ids=[f"{m} {p}" for m, p, _ in ENDPOINTS])
def test_each_endpoint_asks_the_permission_of_its_action(method, path, acts):
    make_channel(7)
    anonymous = call(APIClient(), method, path)
    assert anonymous.status_code == 401
    plain = call(token_client(make_user("plain")), method, path)
    assert plain.status_code == 403, plain.content
    viewer = call(token_client(make_user("viewer", permissions="view", staff=True)), method, path)
    assert (viewer.status_code == 403) == acts, viewer.content
    operator = call(token_client(make_user("operator", permissions="all")), method, path)
    assert operator.status_code not in (401, 403) and operator.status_code < 500 or operator.status_code == 503, \
        (operator.status_code, operator.content)


@pytest.mark.django_db
def test_admin_actions_need_the_change_permission_too(rf):
    from django.contrib import admin

    from channels_app.models import Channel, MediaAsset, Schedule
    from resources_app.models import EncodeHost

    for username, permissions, expected in (("viewer", "view", set()), ("operator", "all", None)):
        request = rf.get("/admin/")
        request.user = make_user(username, permissions=permissions, staff=True)
        for model in (Channel, EncodeHost, MediaAsset, Schedule):
            model_admin = admin.site._registry[model]
            actions = set(model_admin.get_actions(request)) - {"delete_selected"}
            declared = {name for name in model_admin.actions or ()}
            assert actions == (declared if expected is None else expected), (username, model)
