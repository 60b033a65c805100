"""Synthesis pages (included by curation/urls.py, namespace ``curation``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("datasets/<int:pk>/synthesize/", views.synthesis_new, name="synthesis_new"),
    path("datasets/<int:pk>/synthesize/launch", views.synthesis_launch, name="synthesis_launch"),
    path(
        "datasets/<int:pk>/synthesize/preflight",
        views.synthesis_preflight,
        name="synthesis_preflight",
    ),
    path("synthesis/<int:pk>/", views.synthesis_run_detail, name="synthesis_run_detail"),
    path("synthesis/<int:pk>/cancel", views.synthesis_run_cancel, name="synthesis_run_cancel"),
    path("synthesis/<int:pk>/retry", views.synthesis_run_retry_view, name="synthesis_run_retry"),
]
