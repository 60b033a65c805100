"""Roles decide who sees what. A user's role is the Django group of that name; superusers
are admins. Ranks are cumulative except that annotators only review: they never reach
curator pages, and viewers read but never write.
"""

from functools import wraps

from django.core.exceptions import PermissionDenied
from django.db import models


class Role(models.TextChoices):
    ADMIN = "admin"
    CURATOR = "curator"
    ANNOTATOR = "annotator"
    VIEWER = "viewer"


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {r.value for r in Role}
    cached = getattr(user, "_sieve_roles", None)
    if cached is None:
        cached = set(user.groups.values_list("name", flat=True)) & {r.value for r in Role}
        if Role.ADMIN in cached:
            cached |= {Role.CURATOR, Role.VIEWER}
        if Role.CURATOR in cached:
            cached |= {Role.VIEWER}
        user._sieve_roles = cached
    return cached


def has_role(user, *roles: str) -> bool:
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str):
    """View decorator: 403 unless the logged-in user holds one of ``roles``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


CAN_READ_DATA = (Role.ADMIN, Role.CURATOR, Role.VIEWER)
CAN_CURATE = (Role.ADMIN, Role.CURATOR)
