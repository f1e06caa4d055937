"""The admin of records the system writes (runs, alerts, the as-run log, deliveries): nobody
adds, edits or deletes one by hand, yet they go with the channel they belong to."""
from django.contrib import admin


class RecordAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def records_of(site):
    """Verbose names of the record models registered on `site`: deleting a channel takes its
    records along without asking for a delete permission nobody has."""
    return {model._meta.verbose_name for model, model_admin in site._registry.items()
            if isinstance(model_admin, RecordAdmin)}
