"""Django's admin app with Sieve's site (core/admin_site.py). Kept apart: an app config is
imported before models are ready, the site and the auth backend import models."""

from django.contrib.admin.apps import AdminConfig


class SieveAdminConfig(AdminConfig):
    default_site = "core.admin_site.SieveAdminSite"
