from django.apps import AppConfig


class ResourcesAppConfig(AppConfig):
    name = "resources_app"
    verbose_name = "Resources"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import signals  # noqa: F401  (host registration and heartbeat in workers)
