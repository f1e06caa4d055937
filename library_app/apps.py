from django.apps import AppConfig


class LibraryAppConfig(AppConfig):
    name = "library_app"
    verbose_name = "Library and programming rules"
    default_auto_field = "django.db.models.BigAutoField"
