"""Cascade pages (included by curation/urls.py, namespace ``curation``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("datasets/<int:pk>/cascade/", views.cascade_new, name="cascade_new"),
    path(
        "datasets/<int:pk>/cascade/estimate", views.cascade_estimate_view, name="cascade_estimate"
    ),
    path("datasets/<int:pk>/cascade/launch", views.cascade_launch, name="cascade_launch"),
    path("datasets/<int:pk>/cascade/preflight", views.cascade_preflight, name="cascade_preflight"),
    path("cascades/<int:pk>/", views.cascade_run_detail, name="cascade_run_detail"),
    path("cascades/<int:pk>/cancel", views.cascade_run_cancel, name="cascade_run_cancel"),
    path("cascades/<int:pk>/retry", views.cascade_run_retry_view, name="cascade_run_retry"),
]
