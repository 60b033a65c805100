from django.urls import path

from . import views

app_name = "evaluation"
urlpatterns = [
    path("", views.leaderboard, name="leaderboard"),
    path("leaderboard.csv", views.leaderboard_csv, name="leaderboard_csv"),
    path("new/", views.evaluation_new, name="new"),
    path("new/launch", views.evaluation_launch, name="launch"),
    path("new/tasks", views.evaluation_task_search_view, name="task_search"),
    path("runs/<int:pk>/", views.evaluation_run_detail, name="run_detail"),
    path("runs/<int:pk>/scores.svg", views.evaluation_run_scores_svg, name="run_scores_svg"),
    path("runs/<int:pk>/cancel", views.evaluation_run_cancel_view, name="run_cancel"),
    path(
        "training-runs/<int:pk>/evaluations",
        views.training_run_evaluations,
        name="training_run_evaluations",
    ),
]
