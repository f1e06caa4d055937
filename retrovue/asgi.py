"""ASGI entry point: how compose serves the web (uvicorn), so live TS viewers are coroutines."""
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "retrovue.settings")
application = get_asgi_application()
