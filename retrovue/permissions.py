"""The admin's model permissions, on the API (the default permission class of every view)."""
from rest_framework.permissions import BasePermission

READ_METHODS = ("GET", "HEAD", "OPTIONS")


class ModelPermissions(BasePermission):
    """Each view names the permission each of its methods needs (`permissions = {"GET":
    "channels_app.view_channel", "POST": ...}`): view to read, add, change or delete to act. A
    method a view does not name is refused, so a new endpoint is closed until it says what it needs."""

    def has_permission(self, request, view):
        method = "GET" if request.method in READ_METHODS else request.method
        needed = getattr(view, "permissions", {}).get(method)
        user = request.user
        return bool(user and user.is_authenticated and needed and user.has_perm(needed))
