from django.urls import include, path

from . import views

app_name = "review"
urlpatterns: list = [
    path("", views.campaign_list, name="campaign_list"),
    path("mine/", views.annotator_home, name="annotator_home"),
    path("new", views.campaign_create, name="campaign_create"),
    path("<int:pk>/", views.campaign_detail, name="campaign_detail"),
    path("<int:pk>/status", views.campaign_status, name="campaign_status"),
    path("<int:pk>/guidelines", views.campaign_guidelines, name="campaign_guidelines"),
    path("<int:pk>/work/", views.review_page, name="review_page"),
    path("<int:pk>/work/submit", views.review_submit, name="review_submit"),
    path("<int:pk>/work/list-submit", views.review_list_submit_view, name="review_list_submit"),
    path("<int:pk>/work/mode", views.review_mode, name="review_mode"),
    path("<int:pk>/work/undo", views.review_undo, name="review_undo"),
    path("<int:pk>/work/history", views.review_history_page, name="review_history"),
    path("<int:pk>/adjudicate/", views.adjudication_queue, name="adjudication_queue"),
    path("<int:pk>/adjudicate/decide", views.adjudication_submit, name="adjudication_submit"),
    path("<int:pk>/consensus", views.consensus_decide, name="consensus_decide"),
    # The agreement report (built beside this module).
    path("", include("review.agreement.urls")),
    # Approving the cascade's verdicts for a whole dataset, gated by that agreement.
    path("", include("review.approvals.urls")),
]
