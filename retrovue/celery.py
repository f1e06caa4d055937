"""Celery wiring in the standard Django pattern: every CELERY_* setting lives in settings.py."""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrovue.settings")

app = Celery("retrovue")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
