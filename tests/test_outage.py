"""The database away is a 503 with Retry-After and one line of reason, on the API (JSON), the
pages and the IPTV surface: never a 500, never a traceback. The outage is real: the connection's
settings are pointed where no database answers (a port nothing listens on, or a SQLite file in
a folder that does not exist), and every query fails in the driver."""
import socket

import pytest
from django.db import connections

from .factories import make_user, token_client


def unreachable(db):
    if db["ENGINE"].endswith("sqlite3"):
        return {"NAME": "/nonexistent-retrovue-folder/away.sqlite3"}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    return {"HOST": "127.0.0.1", "PORT": str(port)}


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_a_503_with_retry_after_never_a_traceback(client):
    api = token_client(make_user("ops", permissions="all"))
    connection = connections["default"]
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(unreachable(saved))
    try:
        answers = {path: (api if path.startswith("/api/") else client).get(path)
                   for path in ("/api/channels", "/api/health", "/iptv/xmltv.xml", "/iptv/channels.m3u")}
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)
    for path, answer in answers.items():
        assert answer.status_code == 503 and answer["Retry-After"] == "5", (path, answer.status_code)
        body = answer.content.decode()
        assert "database is unavailable" in body and "Traceback" not in body and "File \"" not in body, body
    assert answers["/api/channels"].json() == {"detail": "the database is unavailable; try again shortly"}
