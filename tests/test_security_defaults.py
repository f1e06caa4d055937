"""Safe defaults: DEBUG off unless asked for, no start outside DEBUG with a default or weak
secret key, login throttling, a content security policy on the pages, and `check --deploy`
clean with the compose file's environment."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User

ROOT = Path(__file__).resolve().parent.parent
STRONG_KEY = "k" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"  # 51 characters, 50+ distinct


def run_django(code, **env):
    """`code` in a fresh interpreter with Django set up from `env` (no DJANGO_* of this session)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    return subprocess.run([sys.executable, "-c", f"import django; django.setup(); {code}"], cwd=ROOT,
                          env={**clean, "DJANGO_SETTINGS_MODULE": "retrovue.settings", **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("key", [None, "retrovue-dev-only-secret-key-change-me-in-production", "short", "a" * 60],
                         ids=["unset", "the development default", "short", "one character"])
def test_outside_debug_a_default_or_weak_secret_key_refuses_to_start(key):
    done = run_django("pass", **({} if key is None else {"DJANGO_SECRET_KEY": key}))
    assert done.returncode != 0 and "DJANGO_SECRET_KEY must be set" in done.stderr, done.stderr[-500:]


def test_debug_is_off_unless_asked_for_and_make_run_asks():
    show = "from django.conf import settings; print(settings.DEBUG)"
    assert run_django(show, DJANGO_SECRET_KEY=STRONG_KEY).stdout.strip() == "False"
    assert run_django(show, DJANGO_DEBUG="1").stdout.strip() == "True"  # a development server may keep the default key
    assert "run: export DJANGO_DEBUG ?= 1" in (ROOT / "Makefile").read_text()


def compose_environment():
    """The environment block the compose file gives every service, its ${...} resolved as
    Compose would with DJANGO_SECRET_KEY set."""
    text = (ROOT / "docker-compose.yml").read_text()
    block = text.split("environment: &env\n", 1)[1].split("\n  volumes:", 1)[0]
    env = {}
    for line in block.splitlines():
        if match := re.match(r"\s+([A-Z_]+): (.*)$", line):
            value = match.group(2).strip().strip('"')
            value = re.sub(r"\$\{DJANGO_SECRET_KEY:\?[^}]*\}", STRONG_KEY, value)
            env[match.group(1)] = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)
    return env


def test_check_deploy_is_clean_with_the_compose_environment(tmp_path):
    env = {**compose_environment(), "RETROVUE_DATA_DIR": str(tmp_path), "RETROVUE_MEDIA_ROOTS": str(tmp_path)}
    assert env["DJANGO_DEBUG"] == "0" and "*" not in env["DJANGO_ALLOWED_HOSTS"]
    done = run_django("from django.core.management import call_command; "
                      "call_command('check', deploy=True, fail_level='WARNING')", **env)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.django_db
def test_logins_are_throttled_after_five_wrong_passwords(client):
    User.objects.create_user("ops", password="a long enough passphrase", is_staff=True)
    for _ in range(5):
        client.post("/admin/login/", {"username": "ops", "password": "wrong"})
    right = client.post("/admin/login/", {"username": "ops", "password": "a long enough passphrase"})
    assert right.status_code == 429 and "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_pages_carry_a_content_security_policy_whose_nonce_their_scripts_have(admin_client):
    page = admin_client.get("/channels")
    policy = page.headers["Content-Security-Policy"]
    nonce = re.search(r"script-src 'self' 'nonce-([^']+)'", policy).group(1)
    scripts = re.findall(r"<script([^>]*)>", page.content.decode())
    assert scripts and all(f'nonce="{nonce}"' in attributes for attributes in scripts)
    assert "frame-ancestors 'none'" in policy
