"""Agreement report pages and downloads, included by review/urls.py (namespace ``review``,
under ``/review/``). The REST API is with the others, at ``/api/agreement/``
(config/api_urls.py)."""

from django.urls import path

from . import views_agreement

urlpatterns: list = [
    path("agreement/", views_agreement.agreement_index, name="agreement_index"),
    path("agreement/new", views_agreement.agreement_create, name="agreement_create"),
    path("agreement/<int:pk>/", views_agreement.agreement_detail, name="agreement_detail"),
    path(
        "agreement/<int:pk>/recompute",
        views_agreement.agreement_recompute,
        name="agreement_recompute",
    ),
    path("agreement/<int:pk>/cancel", views_agreement.agreement_cancel, name="agreement_cancel"),
    path("agreement/<int:pk>/agreement.csv", views_agreement.agreement_csv, name="agreement_csv"),
    path(
        "agreement/<int:pk>/agreement.json", views_agreement.agreement_json, name="agreement_json"
    ),
]
