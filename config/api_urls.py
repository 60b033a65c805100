"""One router for every app's REST API, under /api/ (config/urls.py)."""

from django.urls import path

from curation.cascade import api as cascade_api
from curation.datasets import api
from curation.mining import api as mining_api
from curation.synthesis import api as synthesis_api
from evaluation import api as evaluation_api
from experiments import api as experiments_api
from review import api as review_api
from review.agreement import api as agreement_api
from review.approvals import api as approvals_api
from training import api as training_api

app_name = "api"
urlpatterns = [
    path("datasets/", api.DatasetListApi.as_view(), name="dataset-list"),
    path("datasets/<int:pk>/", api.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<int:pk>/queries/", api.DatasetQueryListApi.as_view(), name="dataset-queries"),
    path("imports/", api.ImportListCreateApi.as_view(), name="import-list"),
    path("imports/<int:pk>/", api.ImportDetailApi.as_view(), name="import-detail"),
    path("imports/<int:pk>/cancel", api.ImportCancelApi.as_view(), name="import-cancel"),
    path("imports/<int:pk>/retry", api.ImportRetryApi.as_view(), name="import-retry"),
    path("snapshots/", api.SnapshotListCreateApi.as_view(), name="snapshot-list"),
    path("snapshots/<int:pk>/", api.SnapshotDetailApi.as_view(), name="snapshot-detail"),
    path(
        "snapshots/<int:pk>/download",
        api.SnapshotDownloadApi.as_view(),
        name="snapshot-download",
    ),
    path("exports/", api.ExportJobListApi.as_view(), name="export-list"),
    path("exports/<int:pk>/", api.ExportJobDetailApi.as_view(), name="export-detail"),
    path("exports/<int:pk>/cancel", api.ExportJobCancelApi.as_view(), name="export-cancel"),
    path("mining-runs/", mining_api.MiningRunListCreateApi.as_view(), name="mining-list"),
    path("mining-runs/<int:pk>/", mining_api.MiningRunDetailApi.as_view(), name="mining-detail"),
    path(
        "mining-runs/<int:pk>/cancel", mining_api.MiningRunCancelApi.as_view(), name="mining-cancel"
    ),
    path("cascade-runs/", cascade_api.CascadeRunListCreateApi.as_view(), name="cascade-list"),
    path(
        "cascade-runs/<int:pk>/", cascade_api.CascadeRunDetailApi.as_view(), name="cascade-detail"
    ),
    path(
        "cascade-runs/<int:pk>/cancel",
        cascade_api.CascadeRunCancelApi.as_view(),
        name="cascade-cancel",
    ),
    path(
        "cascade-runs/<int:pk>/retry",
        cascade_api.CascadeRunRetryApi.as_view(),
        name="cascade-retry",
    ),
    path(
        "synthesis-runs/",
        synthesis_api.SynthesisRunListCreateApi.as_view(),
        name="synthesis-list",
    ),
    path(
        "synthesis-runs/<int:pk>/",
        synthesis_api.SynthesisRunDetailApi.as_view(),
        name="synthesis-detail",
    ),
    path(
        "synthesis-runs/<int:pk>/cancel",
        synthesis_api.SynthesisRunCancelApi.as_view(),
        name="synthesis-cancel",
    ),
    path(
        "synthesis-runs/<int:pk>/retry",
        synthesis_api.SynthesisRunRetryApi.as_view(),
        name="synthesis-retry",
    ),
    path("training-runs/", training_api.TrainingRunListCreateApi.as_view(), name="training-list"),
    path(
        "training-runs/<int:pk>/",
        training_api.TrainingRunDetailApi.as_view(),
        name="training-detail",
    ),
    path(
        "training-runs/<int:pk>/cancel",
        training_api.TrainingRunCancelApi.as_view(),
        name="training-cancel",
    ),
    path(
        "training-runs/<int:pk>/retry",
        training_api.TrainingRunRetryApi.as_view(),
        name="training-retry",
    ),
    path(
        "evaluation-runs/",
        evaluation_api.EvaluationRunListCreateApi.as_view(),
        name="evaluation-list",
    ),
    path(
        "evaluation-runs/<int:pk>/",
        evaluation_api.EvaluationRunDetailApi.as_view(),
        name="evaluation-detail",
    ),
    path(
        "evaluation-runs/<int:pk>/cancel",
        evaluation_api.EvaluationRunCancelApi.as_view(),
        name="evaluation-cancel",
    ),
    path("leaderboard/", evaluation_api.LeaderboardApi.as_view(), name="leaderboard"),
    path(
        "policy-comparisons/",
        experiments_api.PolicyComparisonListCreateApi.as_view(),
        name="comparison-list",
    ),
    path(
        "policy-comparisons/<int:pk>/",
        experiments_api.PolicyComparisonDetailApi.as_view(),
        name="comparison-detail",
    ),
    path("campaigns/", review_api.CampaignListApi.as_view(), name="campaign-list"),
    path("campaigns/<int:pk>/", review_api.CampaignDetailApi.as_view(), name="campaign-detail"),
    path(
        "campaigns/<int:pk>/answers/",
        review_api.CampaignAnswersApi.as_view(),
        name="campaign-answers",
    ),
    path("agreement/", agreement_api.AgreementReportListCreateApi.as_view(), name="agreement-list"),
    path(
        "agreement/<int:pk>/",
        agreement_api.AgreementReportDetailApi.as_view(),
        name="agreement-detail",
    ),
    path("approvals/", approvals_api.ApprovalListCreateApi.as_view(), name="approval-list"),
    path("approvals/<int:pk>/", approvals_api.ApprovalDetailApi.as_view(), name="approval-detail"),
    path(
        "approvals/<int:pk>/cancel",
        approvals_api.ApprovalCancelApi.as_view(),
        name="approval-cancel",
    ),
    path(
        "approvals/<int:pk>/revoke",
        approvals_api.ApprovalRevokeApi.as_view(),
        name="approval-revoke",
    ),
]
