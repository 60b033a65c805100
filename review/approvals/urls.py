"""Approval pages, included by review/urls.py (namespace ``review``, under ``/review/``). The
REST API is at ``/api/approvals/`` (config/api_urls.py)."""

from django.urls import path

from . import views

urlpatterns: list = [
    path("approvals/", views.approval_index, name="approval_index"),
    path("approvals/new", views.approval_new, name="approval_new"),
    path("approvals/create", views.approval_create, name="approval_create"),
    path("approvals/<int:pk>/", views.approval_detail, name="approval_detail"),
    path("approvals/<int:pk>/cancel", views.approval_cancel, name="approval_cancel"),
    path("approvals/<int:pk>/revoke", views.approval_revoke_view, name="approval_revoke"),
]
