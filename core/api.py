from rest_framework import permissions
from rest_framework.exceptions import ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from .errors import ApplicationError
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
