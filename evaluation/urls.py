from django.urls import path

from . import views

app_name = "evaluation"
urlpatterns = [
    path("", views.leaderboard, name="leaderboard"),
    path("leaderboard.csv", views.leaderboard_csv, name="leaderboard_csv"),
    path("experiments/", views.experiments, name="experiments"),
    path("new/", views.evaluation_new, name="new"),
    path("new/launch", views.evaluation_launch, name="launch"),
    path("runs/<int:pk>/", views.evaluation_run_detail, name="run_detail"),
    path("runs/<int:pk>/cancel", views.evaluation_run_cancel_view, name="run_cancel"),
    path("compare/dataset/<int:dataset_pk>/", views.comparison_new, name="comparison_new"),
    path(
        "compare/dataset/<int:dataset_pk>/launch",
        views.comparison_launch,
        name="comparison_launch",
    ),
    path("compare/<int:pk>/", views.comparison_detail, name="comparison_detail"),
]
