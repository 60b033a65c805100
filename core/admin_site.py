"""Django's admin for Sieve's roles: every member of the ``admin`` group gets in, with every
permission (README: "admin — everything, including the Django admin"); nobody else does.

Django's own rule is the ``is_staff`` flag, which nothing in Sieve sets when a user is put
in the ``admin`` group, so group admins were sent to the admin's login page. Deciding by the
role keeps one source of truth (the group) instead of a flag to keep in step with it."""

from django.contrib.admin import AdminSite
from django.contrib.auth.backends import ModelBackend

from .roles import Role, has_role


def _is_admin(user) -> bool:
    return bool(user and user.is_active and has_role(user, Role.ADMIN))


class SieveAdminSite(AdminSite):
    site_header = "Sieve administration"

    def has_permission(self, request):
        return _is_admin(request.user)


class RoleBackend(ModelBackend):
    """Django's model permissions, plus every permission for the ``admin`` role."""

    def has_perm(self, user_obj, perm, obj=None):
        return _is_admin(user_obj) or super().has_perm(user_obj, perm, obj)

    def has_module_perms(self, user_obj, app_label):
        return _is_admin(user_obj) or super().has_module_perms(user_obj, app_label)
