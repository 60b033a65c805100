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


def _roles_of_groups(group_names) -> set[str]:
    roles = set(group_names) & {r.value for r in Role}
    if Role.ADMIN in roles:
        roles |= {Role.CURATOR, Role.VIEWER}
    if Role.CURATOR in roles:
        roles |= {Role.VIEWER}
    return roles


def user_roles(user) -> set[str]:
    if not user.is_authenticated:
        return set()
    if user.is_superuser:
        return {r.value for r in Role}
    cached = getattr(user, "_sieve_roles", None)
    if cached is None:
        cached = _roles_of_groups(user.groups.values_list("name", flat=True))
        user._sieve_roles = cached
    return cached


def user_roles_known(user, group_names) -> None:
    """Tell the role checks of this request which role groups ``user`` is in, read by the
    caller in the same statement as what it checks (a hot page reads the object, the
    membership and the roles in one query instead of three). Lasts as long as the user
    object: one request."""
    user._sieve_roles = _roles_of_groups(group_names)


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
