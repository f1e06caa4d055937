"""Notification endpoints: thin views over notifications_app.services and .delivery."""
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from retrovue.api import ERRORS, documented

from . import services
from .delivery import send_trial
from .serializers import NotificationSerializer, RouteSerializer, TrialOutcomeSerializer

VIEW_ROUTE, ADD_ROUTE = "notifications_app.view_notificationroute", "notifications_app.add_notificationroute"
CHANGE_ROUTE, DELETE_ROUTE = "notifications_app.change_notificationroute", "notifications_app.delete_notificationroute"


class RouteList(APIView):
    permissions = {"GET": VIEW_ROUTE, "POST": ADD_ROUTE}

    @documented(RouteSerializer(many=True))
    def get(self, request):
        return Response(RouteSerializer(services.find_routes(), many=True).data)

    @documented(RouteSerializer, request=RouteSerializer, status=201)
    def post(self, request):
        route = services.save_route(request.data)
        return Response(RouteSerializer(route).data, status=status.HTTP_201_CREATED)


class RouteDetail(APIView):
    permissions = {"GET": VIEW_ROUTE, "PUT": CHANGE_ROUTE, "PATCH": CHANGE_ROUTE, "DELETE": DELETE_ROUTE}

    @documented(RouteSerializer)
    def get(self, request, ref):
        return Response(RouteSerializer(services.get_route(ref)).data)

    @documented(RouteSerializer, request=RouteSerializer)
    def put(self, request, ref):
        return Response(RouteSerializer(services.save_route(request.data, services.get_route(ref))).data)

    @documented(RouteSerializer, request=RouteSerializer)
    def patch(self, request, ref):
        route = services.save_route(request.data, services.get_route(ref), partial=True)
        return Response(RouteSerializer(route).data)

    @documented(None, status=204)
    def delete(self, request, ref):
        services.delete_route(services.get_route(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class RouteTrial(APIView):
    """Send the route a test message now: 200 when its receiver took it, 502 with its answer if not."""

    permissions = {"POST": CHANGE_ROUTE}

    @extend_schema(request=None, responses={200: TrialOutcomeSerializer, 502: TrialOutcomeSerializer, **ERRORS})
    def post(self, request, ref):
        outcome = send_trial(services.get_route(ref))
        return Response(outcome, status=status.HTTP_200_OK if outcome["sent"] else status.HTTP_502_BAD_GATEWAY)


class NotificationList(APIView):
    permissions = {"GET": "notifications_app.view_notification"}

    @documented(NotificationSerializer(many=True), parameters=[OpenApiParameter("status", str)])
    def get(self, request):
        found = services.find_notifications(status=request.query_params.get("status"))
        return Response(NotificationSerializer(found, many=True).data)
