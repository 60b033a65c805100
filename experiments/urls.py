"""Experiment pages, under /leaderboard/ beside the leaderboard (config/urls.py)."""

from django.urls import path

from . import views

app_name = "experiments"
urlpatterns = [
    path("experiments/", views.experiments, name="experiments"),
    path("compare/dataset/<int:dataset_pk>/", views.comparison_new, name="comparison_new"),
    path(
        "compare/dataset/<int:dataset_pk>/launch",
        views.comparison_launch,
        name="comparison_launch",
    ),
    path("compare/<int:pk>/", views.comparison_detail, name="comparison_detail"),
]
