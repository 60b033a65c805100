from django.urls import path

from . import views

app_name = "training"
urlpatterns = [
    path("", views.training_run_list, name="run_list"),
    path("snapshots/<int:pk>/runs", views.snapshot_runs, name="snapshot_runs"),
    path("snapshots/<int:pk>/train/", views.training_new, name="new"),
    path("snapshots/<int:pk>/train/launch", views.training_launch, name="launch"),
    path("runs/<int:pk>/", views.training_run_detail, name="run_detail"),
    path("runs/<int:pk>/<str:metric>.svg", views.training_run_chart_svg, name="run_chart_svg"),
    path("runs/<int:pk>/cancel", views.training_run_cancel_view, name="run_cancel"),
    path("runs/<int:pk>/retry", views.training_run_retry_view, name="run_retry"),
]
