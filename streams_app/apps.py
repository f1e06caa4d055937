from django.apps import AppConfig


class StreamsAppConfig(AppConfig):
    name = "streams_app"
    verbose_name = "Streams"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import signals  # noqa: F401  (worker shutdown, beat schedule)
