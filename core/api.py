"""The API platform every app's REST views stand on: the base class, roles as permissions,
pagination, the shared job serializer and the generic job detail / cancel views.

Serializers shared by several views live at module level and every serializer has a distinct
class name, because drf-spectacular names schema components after the class.
"""

from collections.abc import Mapping

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError
from .jobs import job_request_cancel
from .roles import CAN_CURATE, CAN_READ_DATA, has_role


def exception_handler(exc, context):
    """Map ApplicationError to a 400 that keeps its where-detail (file, line, field)."""
    if isinstance(exc, ApplicationError):
        exc = ValidationError({"message": exc.message, **exc.detail})
    return drf_exception_handler(exc, context)


class CanReadData(permissions.BasePermission):
    def has_permission(self, request, view):
        return has_role(request.user, *CAN_READ_DATA)


class CanCurate(permissions.BasePermission):
    """Viewers may read; writing needs a curator or admin."""

    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return has_role(request.user, *CAN_READ_DATA)
        return has_role(request.user, *CAN_CURATE)


class SieveApi(APIView):
    # Reading needs a viewer, curator or admin. LoginRequiredMiddleware would send a token-only
    # client (no session) to the login page; DRF (>= 3.15.2) marks every APIView.as_view() with
    # login_required = False itself, so its authentication and IsAuthenticated guard the API
    # and answer 401 to anonymous requests (tests/api/test_api.py checks that).
    # (A comment, not a docstring: drf-spectacular would copy a docstring into every operation.)
    permission_classes = [IsAuthenticated, CanReadData]


# --- pagination ------------------------------------------------------------------------------


class NewestFirstPagination(CursorPagination):
    ordering = "-id"
    page_size = 50
    max_page_size = 500
    page_size_query_param = "page_size"


class OldestFirstPagination(NewestFirstPagination):
    ordering = "id"


class QueryIdPagination(NewestFirstPagination):
    # Walks the (dataset, query_id) unique index.
    ordering = "query_id"


# Requests name the environment variable that holds an endpoint's key on the workers, never
# the key (the cascade and synthesis APIs).
KEY_REFUSED = (
    "API keys are never accepted: name the environment variable that holds the key on the "
    "workers in api_key_env"
)


def refuse_unknown_fields(serializer: serializers.Serializer, data) -> None:
    """A field the serializer does not know is an error, not silently dropped: a pasted key
    (``api_key``) must never look accepted."""
    if not isinstance(data, Mapping):
        return
    unknown = sorted(set(data) - set(serializer.fields))
    if unknown:
        raise serializers.ValidationError(
            {name: [KEY_REFUSED if "key" in name.lower() else "unknown field"] for name in unknown}
        )


def filtered_by_ids(request, queryset, *names: str):
    """``queryset`` narrowed by each ``?<name>=<id>`` present (``<name>_id`` equal to it); a
    value that is not a whole number is a 400 naming the parameter."""
    for name in names:
        value = request.query_params.get(name)
        if value:
            if not value.isdigit():
                raise serializers.ValidationError({name: "must be an integer id"})
            queryset = queryset.filter(**{f"{name}_id": int(value)})
    return queryset


def paginated(view: APIView, queryset, serializer_class, *, prepare=None) -> Response:
    """One cursor page of ``queryset`` serialized; ``prepare(page)`` may attach per-page data
    (counts for this page's rows only, in one grouped query) before serializing."""
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    if prepare is not None:
        prepare(page)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# --- jobs ------------------------------------------------------------------------------------


class JobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(
        help_text="queued, running, succeeded, partial (finished with failures), failed, cancelled."
    )
    progress = serializers.FloatField(help_text="0..1")
    progress_message = serializers.CharField(help_text="What the job is doing now.")
    stats = serializers.JSONField()
    error = serializers.CharField(help_text="Why it failed, or a summary of its failed items.")
    error_detail = serializers.JSONField(help_text="Where the error happened: file, line, field.")
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


def job_api_views(*, queryset, serializer, noun: str, stops: str = "at its next step"):
    """The detail and cancel views of one kind of job: ``GET <id>/`` and ``POST <id>/cancel``
    (curators and admins). ``queryset`` may carry the joins its serializer needs."""

    class JobDetailApi(SieveApi):
        @extend_schema(responses=serializer)
        def get(self, request, pk: int):
            return Response(serializer(get_object_or_404(queryset, pk=pk)).data)

    class JobCancelApi(SieveApi):
        permission_classes = [IsAuthenticated, CanCurate]

        @extend_schema(request=None, responses={202: serializer})
        def post(self, request, pk: int):
            job = get_object_or_404(queryset, pk=pk)
            job_request_cancel(job=job)
            job = get_object_or_404(queryset, pk=pk)
            return Response(serializer(job).data, status=status.HTTP_202_ACCEPTED)

    JobDetailApi.__doc__ = f"One {noun}: status, progress, counts, and why it failed."
    JobCancelApi.__doc__ = f"Ask a queued or running {noun} to stop; it stops {stops}."
    return JobDetailApi, JobCancelApi
