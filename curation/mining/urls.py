"""Mining pages (included by curation/urls.py, namespace ``curation``)."""

from django.urls import path

from . import views

urlpatterns = [
    path("datasets/<int:pk>/mine/", views.mining_new, name="mining_new"),
    path("datasets/<int:pk>/mine/launch", views.mining_launch, name="mining_launch"),
    path("mining/<int:pk>/", views.mining_run_detail, name="mining_run_detail"),
    path("mining/<int:pk>/cancel", views.mining_run_cancel, name="mining_run_cancel"),
]
