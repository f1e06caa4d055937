"""Resource endpoints: thin views over resources_app.services and planning."""
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import documented
from retrovue.errors import ConfigError

from . import openapi, planning, services


class ResourceStatus(APIView):
    permissions = {"GET": "resources_app.view_encodehost"}

    @documented(openapi.ResourceStatus)
    def get(self, request):
        return Response(services.resource_status())


class CapacityPlan(APIView):
    permissions = {"GET": "resources_app.view_encodehost"}

    @documented(openapi.CapacityPlan)
    def get(self, request):
        return Response(planning.capacity_plan())


class Allocate(APIView):
    permissions = {"POST": "resources_app.add_resourceallocation"}

    @documented(openapi.Allocation, request=openapi.AllocationRequest)
    def post(self, request):
        return Response(services.allocate(request.data))


class Release(APIView):
    permissions = {"POST": "resources_app.delete_resourceallocation"}

    @documented(openapi.Released, request=openapi.ReleaseRequest)
    def post(self, request):
        return Response(services.release(request.data))


class HostDrain(APIView):
    """POST /api/resources/hosts/<name>/drain {"migrate": bool} and .../undrain."""

    permissions = {"POST": "resources_app.change_encodehost"}
    undrain = False

    @documented(openapi.HostSummary, request=openapi.DrainRequest, status=202)
    def post(self, request, name):
        if self.undrain:
            return Response(services.undrain_host(name))
        if not isinstance(request.data, dict):
            raise ConfigError({"non_field_errors": ['expected an object like {"migrate": true}']})
        migrate = request.data.get("migrate", False)
        if not isinstance(migrate, bool):
            raise ConfigError({"migrate": ["must be true or false"]})
        return Response(services.drain_host(name, migrate=migrate), status=status.HTTP_202_ACCEPTED)
