"""Agreement report pages and downloads, included by review/urls.py (namespace ``review``,
under ``/review/``). The REST API is with the others, at ``/api/agreement/``
(config/api_urls.py)."""

from django.urls import path

from . import views

urlpatterns: list = [
    path("agreement/", views.agreement_index, name="agreement_index"),
    path("agreement/new", views.agreement_create, name="agreement_create"),
    path("agreement/<int:pk>/", views.agreement_detail, name="agreement_detail"),
    path(
        "agreement/<int:pk>/recompute",
        views.agreement_recompute,
        name="agreement_recompute",
    ),
    path("agreement/<int:pk>/cancel", views.agreement_cancel, name="agreement_cancel"),
    path("agreement/<int:pk>/agreement.csv", views.agreement_csv, name="agreement_csv"),
    path("agreement/<int:pk>/agreement.json", views.agreement_json, name="agreement_json"),
]
