"""The curation pages (namespace ``curation``), one urls module per sub-domain."""

from django.urls import include, path

app_name = "curation"
urlpatterns = [
    path("", include("curation.datasets.urls")),
    path("", include("curation.mining.urls")),
    path("", include("curation.synthesis.urls")),
    path("", include("curation.cascade.urls")),
]
