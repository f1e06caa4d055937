"""Library, collection and programming endpoints: thin views over the library_app services."""
from django.db import transaction
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from channels_app.services import get_channel
from retrovue.api import documented
from retrovue.errors import NotFound

from . import builder, collections, jobs, libraries, openapi
from .models import Collection, Library


def by_ref(model, ref):
    """A library or collection by id or name, or 404."""
    ref = str(ref).strip()
    found = model.objects.filter(**{"pk": int(ref)} if ref.isdigit() else {"name": ref}).first()
    if found is None:
        raise NotFound(f"no {model._meta.verbose_name} '{ref}'")
    return found


def get_library(ref):
    return by_ref(Library, ref)


def get_collection(ref):
    return by_ref(Collection, ref)


class LibraryList(APIView):
    permissions = {"GET": "library_app.view_library", "POST": "library_app.add_library"}

    @documented(openapi.Library(many=True))
    def get(self, request):
        return Response([libraries.library_data(library) for library in Library.objects.all()])

    @documented(openapi.Library, request=openapi.LibraryCreate, status=201)
    def post(self, request):
        """Add a library and queue its first scan (its progress shows in scan_state and progress);
        with the broker away, 503 and no library."""
        with transaction.atomic():
            library = jobs.queue_scan(libraries.create_library(request.data))
        return Response(libraries.library_data(library), status=status.HTTP_201_CREATED)


class LibraryDetail(APIView):
    permissions = {"GET": "library_app.view_library", "PATCH": "library_app.change_library",
                   "DELETE": "library_app.delete_library"}

    @documented(openapi.Library)
    def get(self, request, ref):
        return Response(libraries.library_data(get_library(ref)))

    @documented(openapi.Library, request=openapi.LibraryChange)
    def patch(self, request, ref):
        return Response(libraries.library_data(libraries.update_library(get_library(ref), request.data)))

    @documented(None, status=204)
    def delete(self, request, ref):
        """Forget the library; its media assets stay in the media library."""
        libraries.delete_library(get_library(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class LibraryScan(APIView):
    permissions = {"POST": "library_app.change_library"}

    @documented(openapi.Library, status=202)
    def post(self, request, ref):
        """Queue a rescan: only new and changed files are probed; removed ones are marked missing."""
        library = jobs.queue_scan(get_library(ref))
        return Response(libraries.library_data(library), status=status.HTTP_202_ACCEPTED)


class CollectionList(APIView):
    permissions = {"GET": "library_app.view_collection", "POST": "library_app.add_collection"}

    @documented(openapi.Collection(many=True))
    def get(self, request):
        return Response([collections.collection_data(c) for c in Collection.objects.all()])

    @documented(openapi.Collection, request=openapi.CollectionChange, status=201)
    def post(self, request):
        collection = collections.create_collection(request.data)
        return Response(collections.collection_data(collection), status=status.HTTP_201_CREATED)


class CollectionDetail(APIView):
    permissions = {"GET": "library_app.view_collection", "PUT": "library_app.change_collection",
                   "DELETE": "library_app.delete_collection"}

    @documented(openapi.Collection)
    def get(self, request, ref):
        return Response(collections.collection_data(get_collection(ref)))

    @documented(openapi.Collection, request=openapi.CollectionChange)
    def put(self, request, ref):
        collection = collections.update_collection(get_collection(ref), request.data)
        return Response(collections.collection_data(collection))

    @documented(None, status=204)
    def delete(self, request, ref):
        collections.delete_collection(get_collection(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)


class ProgrammingView(APIView):
    permissions = {"GET": "library_app.view_channelprogramming", "PUT": "library_app.change_channelprogramming",
                   "DELETE": "library_app.delete_channelprogramming"}

    @documented(openapi.Programming)
    def get(self, request, ref):
        return Response(builder.programming_data(get_channel(ref)))

    @documented(openapi.Programming, request=openapi.ProgrammingChange)
    def put(self, request, ref):
        """Program the channel by rules: its schedule is built from the next program boundary
        (at least five minutes ahead) to RETROVUE_PROGRAMMING_HOURS ahead, and kept that far by beat."""
        channel = get_channel(ref)
        builder.set_programming(channel, request.data)
        return Response(builder.programming_data(channel))

    @documented(None, status=204)
    def delete(self, request, ref):
        """Stop building by rules; the schedule built so far stays on air."""
        builder.clear_programming(get_channel(ref))
        return Response(status=status.HTTP_204_NO_CONTENT)
