"""WSGI entry point for the RetroVue web server."""
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrovue.settings")
application = get_wsgi_application()
