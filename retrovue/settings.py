"""RetroVue settings: twelve-factor, every knob from the environment with an embedded default.

The defaults run everything on one machine (SQLite under ./var, Redis on 127.0.0.1) so that
`make run` works on a fresh clone; production sets DATABASE_URL, REDIS_URL and friends.
"""
import ipaddress
import os
import re
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name, default):
    return os.environ.get(name, default)


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def env_bool(name, default):
    return os.environ.get(name, str(default)).strip().lower() in ("1", "true", "yes", "on")


DEV_SECRET_KEY = "retrovue-dev-only-secret-key-change-me-in-production"
SECRET_KEY = env_str("DJANGO_SECRET_KEY", DEV_SECRET_KEY)
# Off unless asked for (`make run` asks, and says so): a DEBUG error page shows the environment.
DEBUG = env_bool("DJANGO_DEBUG", False)
if not DEBUG and (SECRET_KEY == DEV_SECRET_KEY or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY must be set to a random value of 50 or more characters when DJANGO_DEBUG is off; "
        "make one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'")
ALLOWED_HOSTS = env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver").split(",")

# --- RetroVue runtime -------------------------------------------------------------------------
RETROVUE_DATA_DIR = Path(env_str("RETROVUE_DATA_DIR", str(BASE_DIR / "var"))).resolve()
RETROVUE_MEDIA_ROOTS = [
    Path(p).resolve()
    for p in env_str("RETROVUE_MEDIA_ROOTS", str(RETROVUE_DATA_DIR / "media")).split(":")
    if p
]
RETROVUE_HOST = env_str("RETROVUE_HOST", socket.gethostname())
RETROVUE_FFMPEG = env_str("RETROVUE_FFMPEG", "ffmpeg")
RETROVUE_FFPROBE = env_str("RETROVUE_FFPROBE", "ffprobe")
# Channel slots of this encode host (threads of its worker pool).
RETROVUE_HOST_CAPACITY = env_int("RETROVUE_HOST_CAPACITY", 8)
# The product's max_channels: the most channels running at once across all hosts (0: no limit
# beyond each host's capacity). Stored system defaults win (channels_app/system_config.py).
RETROVUE_MAX_CHANNELS = env_int("RETROVUE_MAX_CHANNELS", 0)
# This host's network bandwidth for reservations (Mbit/s) and what it offers (e.g. "nvenc").
RETROVUE_HOST_BANDWIDTH_MBPS = env_float("RETROVUE_HOST_BANDWIDTH_MBPS", 1000)
RETROVUE_HOST_LABELS = [label for label in env_str("RETROVUE_HOST_LABELS", "").split(",") if label.strip()]
# Each channel's processes are held to its resource_limits by a control group of their own
# (resources_app/confinement.py): "enforce" where the host's cgroups are writable, "off" to run
# them unconfined. Groups go under RETROVUE_CGROUP_BASE in each cgroup hierarchy.
RETROVUE_RESOURCE_LIMITS = env_str("RETROVUE_RESOURCE_LIMITS", "enforce")
if RETROVUE_RESOURCE_LIMITS not in ("enforce", "off"):
    raise ImproperlyConfigured(f"RETROVUE_RESOURCE_LIMITS is '{RETROVUE_RESOURCE_LIMITS}'; use enforce or off")
# A channel's CPU cap is its max_cpu_percent but never below this (percent of one core): starting
# a segment's reader is a burst of CPU that a tighter cap turns into a late segment.
RETROVUE_MIN_CPU_CAP_PERCENT = env_float("RETROVUE_MIN_CPU_CAP_PERCENT", 25.0)
RETROVUE_CGROUP_BASE = env_str("RETROVUE_CGROUP_BASE", "retrovue")
if not re.fullmatch(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*", RETROVUE_CGROUP_BASE) or ".." in RETROVUE_CGROUP_BASE:
    raise ImproperlyConfigured("RETROVUE_CGROUP_BASE must be a relative path of [A-Za-z0-9_.-] names")
# spread: least loaded host that fits; pack: fullest host that fits (keeps whole hosts free).
RETROVUE_PLACEMENT_STRATEGY = env_str("RETROVUE_PLACEMENT_STRATEGY", "spread")
if RETROVUE_PLACEMENT_STRATEGY not in ("spread", "pack"):
    raise ImproperlyConfigured(f"RETROVUE_PLACEMENT_STRATEGY is '{RETROVUE_PLACEMENT_STRATEGY}'; "
                               "use spread or pack")
# A channel measured above this percent of its reservation raises an OVER_RESERVATION alert.
RETROVUE_ALERT_RESERVATION_PERCENT = env_float("RETROVUE_ALERT_RESERVATION_PERCENT", 100)
# Seconds between the reconcile of reservations with the runs that hold them.
RETROVUE_RECONCILE_SECONDS = env_int("RETROVUE_RECONCILE_SECONDS", 30)
# Seconds between a supervisor's lease heartbeats; a lease older than the TTL is a lost host.
RETROVUE_HEARTBEAT_SECONDS = env_float("RETROVUE_HEARTBEAT_SECONDS", 1.0)
RETROVUE_LEASE_TTL_SECONDS = env_float("RETROVUE_LEASE_TTL_SECONDS", 3.0)
# How often beat sweeps leases (fast failure detection: a lost host's channels move on).
RETROVUE_LEASE_SWEEP_SECONDS = env_int("RETROVUE_LEASE_SWEEP_SECONDS", 1)
if not 0 < RETROVUE_LEASE_SWEEP_SECONDS < RETROVUE_LEASE_TTL_SECONDS:
    raise ImproperlyConfigured("RETROVUE_LEASE_SWEEP_SECONDS must be above 0 and below RETROVUE_LEASE_TTL_SECONDS: "
                               "a lease must be judged before it can be renewed twice")
# The product's monitoring.health_check_interval (stored system defaults win, channels_app/
# system_config.py): how often beat evaluates alerts and forecasts trends. Not the lease sweep.
RETROVUE_HEALTH_CHECK_INTERVAL = env_int("RETROVUE_HEALTH_CHECK_INTERVAL", 30)
if RETROVUE_HEALTH_CHECK_INTERVAL < 1:
    raise ImproperlyConfigured("RETROVUE_HEALTH_CHECK_INTERVAL must be at least 1 (seconds)")
# A host stops feeding its output this long before its lease could be judged expired (more than
# the output stage takes to send what it holds: RETROVUE_PLAYOUT_LEAD_SECONDS and its muxer's).
RETROVUE_FENCE_MARGIN_SECONDS = env_float("RETROVUE_FENCE_MARGIN_SECONDS", 0.5)
if RETROVUE_HEARTBEAT_SECONDS + RETROVUE_FENCE_MARGIN_SECONDS >= RETROVUE_LEASE_TTL_SECONDS:
    raise ImproperlyConfigured("RETROVUE_HEARTBEAT_SECONDS + RETROVUE_FENCE_MARGIN_SECONDS must be below "
                               "RETROVUE_LEASE_TTL_SECONDS: a lease must be renewed before its host fences itself")
# FFmpeg alive but its output time not advancing for this long = stalled, restarted.
RETROVUE_STALL_SECONDS = env_float("RETROVUE_STALL_SECONDS", 2.0)
# System-wide restart policy; ChannelConfig.failover_settings overrides it per channel.
RETROVUE_FAILOVER_DEFAULTS = {
    "auto_restart": env_bool("RETROVUE_AUTO_RESTART", True),
    "max_restart_attempts": env_int("RETROVUE_MAX_RESTART_ATTEMPTS", 3),
    "restart_delay_seconds": env_float("RETROVUE_RESTART_DELAY_SECONDS", 2.0),
}
# A run that stays up this long resets its count of consecutive restart attempts; beat re-places
# channels whose run failed (not those that gave up after max_restart_attempts) this often.
RETROVUE_RESTART_WINDOW_SECONDS = env_float("RETROVUE_RESTART_WINDOW_SECONDS", 60.0)
RETROVUE_FAILED_RETRY_SECONDS = env_float("RETROVUE_FAILED_RETRY_SECONDS", 60.0)
# Metrics history: one sample per stream this often, kept this long.
RETROVUE_METRICS_SAMPLE_SECONDS = env_float("RETROVUE_METRICS_SAMPLE_SECONDS", 10.0)
RETROVUE_METRICS_RETENTION_HOURS = env_float("RETROVUE_METRICS_RETENTION_HOURS", 24.0)
# An on-demand channel with no viewer for this long is stopped (streams_app/tuning.py).
RETROVUE_ON_DEMAND_IDLE_SECONDS = env_float("RETROVUE_ON_DEMAND_IDLE_SECONDS", 60.0)
# The as-run log (what aired, written by the engine) is kept this long.
RETROVUE_ASRUN_RETENTION_DAYS = env_float("RETROVUE_ASRUN_RETENTION_DAYS", 90.0)
# Media libraries are rescanned this often (only new and changed files are probed again).
RETROVUE_LIBRARY_RESCAN_SECONDS = env_int("RETROVUE_LIBRARY_RESCAN_SECONDS", 3600)
# Rule-built schedules reach this far ahead; beat extends them every 10 minutes.
RETROVUE_PROGRAMMING_HOURS = env_int("RETROVUE_PROGRAMMING_HOURS", 48)
# Viewer sessions (tune-ins, watch time) are kept this long.
RETROVUE_VIEWER_RETENTION_DAYS = env_float("RETROVUE_VIEWER_RETENTION_DAYS", 90.0)
# Alert thresholds (the product's monitoring config): percent of a limit, error lines a minute.
RETROVUE_ALERT_CPU_PERCENT = env_float("RETROVUE_ALERT_CPU_PERCENT", 80.0)
RETROVUE_ALERT_MEMORY_PERCENT = env_float("RETROVUE_ALERT_MEMORY_PERCENT", 85.0)
RETROVUE_ALERT_ERROR_RATE = env_float("RETROVUE_ALERT_ERROR_RATE", 5.0)
# Early warnings (streams_app/forecasts.py): a trend fitted over the last WINDOW minutes (from
# at least MIN_SAMPLES points) that reaches its limit within HORIZON minutes raises an alert;
# so does a data disk with less than DISK_FREE_PERCENT free.
RETROVUE_TREND_WINDOW_MINUTES = env_float("RETROVUE_TREND_WINDOW_MINUTES", 10.0)
RETROVUE_TREND_HORIZON_MINUTES = env_float("RETROVUE_TREND_HORIZON_MINUTES", 30.0)
RETROVUE_TREND_MIN_SAMPLES = env_int("RETROVUE_TREND_MIN_SAMPLES", 6)
RETROVUE_TREND_DISK_FREE_PERCENT = env_float("RETROVUE_TREND_DISK_FREE_PERCENT", 10.0)
if RETROVUE_TREND_WINDOW_MINUTES <= 0 or RETROVUE_TREND_HORIZON_MINUTES <= 0 or RETROVUE_TREND_MIN_SAMPLES < 3:
    raise ImproperlyConfigured("RETROVUE_TREND_WINDOW_MINUTES and RETROVUE_TREND_HORIZON_MINUTES must be above 0 "
                               "and RETROVUE_TREND_MIN_SAMPLES at least 3 (a line and its error)")
# Webhooks told of every alert raised and cleared (comma-separated http(s) URLs), besides the
# notification routes made in the admin or the API: each becomes a route with no filter.
RETROVUE_ALERT_WEBHOOKS = [url.strip() for url in env_str("RETROVUE_ALERT_WEBHOOKS", "").split(",") if url.strip()]
for _url in RETROVUE_ALERT_WEBHOOKS:
    if urlsplit(_url).scheme not in ("http", "https") or not urlsplit(_url).hostname:
        raise ImproperlyConfigured(f"RETROVUE_ALERT_WEBHOOKS: '{_url}' is not an http:// or https:// URL with a host")
# Notification delivery: beat's pass interval, each send's timeout, tries before it is failed
# (retries back off 10 s, 30 s, 90 s, ... up to an hour).
RETROVUE_NOTIFY_INTERVAL_SECONDS = env_int("RETROVUE_NOTIFY_INTERVAL_SECONDS", 10)
RETROVUE_NOTIFY_TIMEOUT_SECONDS = env_float("RETROVUE_NOTIFY_TIMEOUT_SECONDS", 5.0)
RETROVUE_NOTIFY_MAX_ATTEMPTS = env_int("RETROVUE_NOTIFY_MAX_ATTEMPTS", 6)
# Outgoing mail (email notification routes), Django's SMTP settings.
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = RETROVUE_NOTIFY_TIMEOUT_SECONDS
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "retrovue@localhost")
# When set, GET /metrics (Prometheus) requires "Authorization: Bearer <token>".
RETROVUE_METRICS_TOKEN = env_str("RETROVUE_METRICS_TOKEN", "")
# When set, a channel whose output is not a loopback address is refused at start (tests, demos).
RETROVUE_LOOPBACK_ONLY = env_bool("RETROVUE_LOOPBACK_ONLY", False)
RETROVUE_UDP_TTL = env_int("RETROVUE_UDP_TTL", 16)
# Where channels may send: the head-end's own networks (loopback, private, multicast) unless the
# operator widens it; and how far multicast may travel.
RETROVUE_OUTPUT_NETWORKS = env_str(
    "RETROVUE_OUTPUT_NETWORKS",
    "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16,fc00::/7,224.0.0.0/4,ff00::/8").split(",")
RETROVUE_MAX_UDP_TTL = env_int("RETROVUE_MAX_UDP_TTL", 32)
# Local networks media URLs may point at (by default none: only internet addresses).
RETROVUE_MEDIA_URL_NETWORKS = env_str("RETROVUE_MEDIA_URL_NETWORKS", "").split(",")
try:
    RETROVUE_OUTPUT_NETWORKS = [ipaddress.ip_network(n.strip()) for n in RETROVUE_OUTPUT_NETWORKS if n.strip()]
    RETROVUE_MEDIA_URL_NETWORKS = [ipaddress.ip_network(n.strip()) for n in RETROVUE_MEDIA_URL_NETWORKS if n.strip()]
except ValueError as exc:
    raise ImproperlyConfigured(f"RETROVUE_OUTPUT_NETWORKS or RETROVUE_MEDIA_URL_NETWORKS: {exc}") from None
if not 1 <= RETROVUE_UDP_TTL <= RETROVUE_MAX_UDP_TTL <= 255:
    raise ImproperlyConfigured("RETROVUE_UDP_TTL must be from 1 to RETROVUE_MAX_UDP_TTL (at most 255)")
RETROVUE_HLS_LIST_SIZE = env_int("RETROVUE_HLS_LIST_SIZE", 6)
# Live TS viewers per channel and per client address, in each web process (503 / 429 beyond).
RETROVUE_MAX_VIEWERS_PER_CHANNEL = env_int("RETROVUE_MAX_VIEWERS_PER_CHANNEL", 200)
RETROVUE_MAX_VIEWERS_PER_CLIENT = env_int("RETROVUE_MAX_VIEWERS_PER_CLIENT", 8)
# Scheduled playout feeds frames this far ahead of air time: the encoder's latency, so program
# boundaries land on the wire at their scheduled time.
RETROVUE_PLAYOUT_LEAD_SECONDS = env_float("RETROVUE_PLAYOUT_LEAD_SECONDS", 0.08)
# When set, the IPTV surface (/iptv/..., HDHomeRun endpoints) requires the token: in the path
# (/iptv/t/<token>/..., what generated URLs carry) or as "?token=<token>". URL-safe characters only.
RETROVUE_IPTV_TOKEN = env_str("RETROVUE_IPTV_TOKEN", "")
if not re.fullmatch(r"[A-Za-z0-9_.~-]*", RETROVUE_IPTV_TOKEN):
    raise ImproperlyConfigured("RETROVUE_IPTV_TOKEN may hold only letters, digits and _.~- (it rides in URL paths)")
# The HDHomeRun tuner: how many streams clients may open at once (0: one per channel, at least 1).
RETROVUE_TUNER_COUNT = env_int("RETROVUE_TUNER_COUNT", 0)
# `manage.py discovery` (HDHomeRun discovery on UDP, SSDP) answers on these, and advertises the web
# server at RETROVUE_PUBLIC_URL (empty: http://<this host's address toward the client>:RETROVUE_WEB_PORT).
RETROVUE_DISCOVERY_BIND = env_str("RETROVUE_DISCOVERY_BIND", "0.0.0.0")
RETROVUE_HDHR_DISCOVER_PORT = env_int("RETROVUE_HDHR_DISCOVER_PORT", 65001)
RETROVUE_SSDP_PORT = env_int("RETROVUE_SSDP_PORT", 1900)
RETROVUE_PUBLIC_URL = env_str("RETROVUE_PUBLIC_URL", "").rstrip("/")
RETROVUE_WEB_PORT = env_int("RETROVUE_WEB_PORT", 8000)
# Where SSDP NOTIFY (alive, byebye) goes, host:port. Empty: nowhere. On a real LAN set it to
# 239.255.255.250:1900 (the SSDP group, which the process then also joins to hear M-SEARCH).
RETROVUE_SSDP_ANNOUNCE = env_str("RETROVUE_SSDP_ANNOUNCE", "")

# --- Django -----------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "axes",
    "resources_app",
    "streams_app",
    "notifications_app",
    "library_app",
    "channels_app",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "axes.middleware.AxesMiddleware",
    "retrovue.middleware.DatabaseOutageMiddleware",
]

if not DEBUG:  # production serves the admin's collected static files itself (runserver does in DEBUG)
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "retrovue.urls"
WSGI_APPLICATION = "retrovue.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "notifications_app.context_processors.open_alerts",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{RETROVUE_DATA_DIR / 'retrovue.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker's supervisor threads, beat and the web server write at once: WAL plus
    # IMMEDIATE transactions make SQLite wait for the lock instead of failing. Connections are
    # kept (CONN_MAX_AGE) as on PostgreSQL: reopening one at every heartbeat costs a connect and
    # its pragmas per channel per second.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(RETROVUE_DATA_DIR / "test.sqlite3")}
elif os.environ.get("RETROVUE_TEST_DATABASE_NAME"):
    # Test sessions sharing one PostgreSQL server each get their own test database.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["RETROVUE_TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in ("UserAttributeSimilarityValidator", "MinimumLengthValidator", "CommonPasswordValidator",
                 "NumericPasswordValidator")
]
# Login throttling (django-axes): after RETROVUE_LOGIN_FAILURES wrong passwords for one user from
# one address, that pair is locked out for RETROVUE_LOGIN_COOLOFF_MINUTES. API tokens are not
# passwords and are not throttled.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env_int("RETROVUE_LOGIN_FAILURES", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("RETROVUE_LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A content security policy on every page: scripts only from here or inline with the page's nonce.
CONTENT_SECURITY_POLICY = {"DIRECTIVES": {
    "default-src": [SELF], "script-src": [SELF, NONCE], "style-src": [SELF, UNSAFE_INLINE],
    "img-src": [SELF, "data:"], "frame-ancestors": [NONE], "form-action": [SELF], "base-uri": [SELF],
}}
# Served over TLS (a TLS-terminating proxy in front sets X-Forwarded-Proto): cookies only over
# HTTPS, HSTS, and people redirected to HTTPS. Players and tuner clients keep plain HTTP: few of
# them speak TLS.
RETROVUE_TLS = env_bool("RETROVUE_TLS", False)
if RETROVUE_TLS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^iptv/", r"^hls/", r"^discover\.json$", r"^lineup", r"^device\.xml$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("RETROVUE_HSTS_SECONDS", 31_536_000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = True
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = RETROVUE_DATA_DIR / "static"
LOGIN_URL = "/admin/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["retrovue.permissions.ModelPermissions"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "retrovue.parsers.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    "EXCEPTION_HANDLER": "retrovue.api.exception_handler",
}

# The API's OpenAPI schema (/api/schema/) and its Swagger page (/api/docs/), for signed-in users;
# the page's assets are served from here (the CSP allows no other origin).
SPECTACULAR_SETTINGS = {
    "TITLE": "RetroVue API",
    "DESCRIPTION": "Channels, schedules, media, running streams, monitoring and resources.",
    "VERSION": "1",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One name for a choice set that several fields use (an alert's severity, a route's minimum)
    "ENUM_NAME_OVERRIDES": {"SeverityEnum": "streams_app.models.Alert.Severity",
                            "LibraryKindEnum": "library_app.models.Library.Kind",
                            "CollectionKindEnum": "library_app.models.Collection.Kind"},
}

# --- Celery (every CELERY_* setting in one block) ----------------------------------------------
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
# Redis by default; RabbitMQ works as well (amqp://user:password@host:5672/vhost).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = "control"
# Stream tasks are acknowledged on receipt and never redelivered: failover is the lease sweep's
# job, not the broker's. One message at a time per free thread.
CELERY_TASK_ACKS_LATE = False
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = None
CELERY_TASK_SOFT_TIME_LIMIT = None
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_WORKER_SEND_TASK_EVENTS = False
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"retrovue": {"handlers": ["console"], "level": env_str("RETROVUE_LOG_LEVEL", "INFO"),
                             "propagate": False}},
}
