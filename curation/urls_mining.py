from django.urls import path

from . import views_mining as views

urlpatterns = [
    path("datasets/<int:pk>/mine/", views.mining_new, name="mining_new"),
    path("datasets/<int:pk>/mine/launch", views.mining_launch, name="mining_launch"),
    path("mining/<int:pk>/", views.mining_run_detail, name="mining_run_detail"),
    path("mining/<int:pk>/cancel", views.mining_run_cancel, name="mining_run_cancel"),
    path("datasets/<int:pk>/synthesize/", views.synthesis_new, name="synthesis_new"),
    path("datasets/<int:pk>/synthesize/launch", views.synthesis_launch, name="synthesis_launch"),
    path("synthesis/<int:pk>/", views.synthesis_run_detail, name="synthesis_run_detail"),
    path("synthesis/<int:pk>/cancel", views.synthesis_run_cancel, name="synthesis_run_cancel"),
]
