"""Dataset, query, import, export and snapshot pages (included by curation/urls.py, namespace
``curation``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/freeze", views.snapshot_freeze, name="snapshot_freeze"),
    path("queries/<int:pk>/", views.query_detail, name="query_detail"),
    path("imports/", views.import_page, name="import_page"),
    path("imports/upload", views.import_upload, name="import_upload"),
    path("imports/<int:pk>/", views.import_job_detail, name="import_job_detail"),
    path("imports/<int:pk>/cancel", views.import_job_cancel, name="import_job_cancel"),
    path("imports/<int:pk>/retry", views.import_job_retry_view, name="import_job_retry"),
    path("exports/<int:pk>/", views.export_job_detail, name="export_job_detail"),
    path("exports/<int:pk>/cancel", views.export_job_cancel, name="export_job_cancel"),
    path("snapshots/", views.snapshot_list, name="snapshot_list"),
    path("snapshots/<int:pk>/", views.snapshot_detail, name="snapshot_detail"),
    path("snapshots/<int:pk>/download", views.snapshot_download, name="snapshot_download"),
]
