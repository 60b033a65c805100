"""REST API for evaluation runs, policy comparisons and the leaderboard. Same services and
selectors as the HTML pages (``training/services.py``, ``evaluation/services/``,
``evaluation/selectors.py``)."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.api import (
    CanCurate,
    JobOutputSerializer,
    NewestFirstPagination,
    SieveApi,
    job_api_views,
    paginated,
)
from training.models import TrainingRun

from . import selectors as reads
from .models import EvaluationMode, EvaluationRun
from .services.runs import evaluation_run_create

# --- evaluation ------------------------------------------------------------------------------


class EvalResultOutputSerializer(serializers.Serializer):
    task = serializers.CharField()
    split = serializers.CharField()
    main_score = serializers.FloatField()
    ndcg_at_10 = serializers.FloatField(allow_null=True)
    recall_at_100 = serializers.FloatField(allow_null=True)
    mrr_at_10 = serializers.FloatField(allow_null=True)
    corpus_size = serializers.IntegerField()
    query_count = serializers.IntegerField()
    metrics = serializers.JSONField()


class EvaluationRunOutputSerializer(JobOutputSerializer):
    training_run = serializers.IntegerField(source="training_run_id", allow_null=True)
    model_ref = serializers.CharField()
    base_model = serializers.CharField()
    model_key = serializers.CharField()
    model_label = serializers.CharField()
    tasks = serializers.JSONField()
    mode = serializers.CharField()
    config = serializers.JSONField()
    results = EvalResultOutputSerializer(many=True)


class EvaluationRunListCreateApi(SieveApi):
    """Evaluation runs, newest first; POST evaluates a training run or any model."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, FormParser]

    class EvaluationRunInputSerializer(serializers.Serializer):
        training_run = serializers.PrimaryKeyRelatedField(
            queryset=TrainingRun.objects.all(), required=False, allow_null=True, default=None
        )
        model_ref = serializers.CharField(required=False, allow_blank=True, default="")
        tasks = serializers.ListField(child=serializers.CharField(), allow_empty=False)
        mode = serializers.ChoiceField(choices=EvaluationMode.choices, default="full")
        config = serializers.JSONField(required=False, default=dict)
        first_stage = serializers.CharField(
            required=False, allow_blank=True, allow_null=True, default=None,
            help_text="Only for a reranker (a cross-encoder): the embedding model whose top "
            "results it re-orders; blank: the configured default. Null (the default): an "
            "embedding model — or, for a fine-tuned reranker, the configured default.",
        )  # fmt: skip
        top_k = serializers.IntegerField(
            required=False, allow_null=True, default=None, min_value=1, max_value=1000,
            help_text="Results per query the reranker re-orders (default 100).",
        )  # fmt: skip

    @extend_schema(responses=EvaluationRunOutputSerializer(many=True))
    def get(self, request):
        runs = EvaluationRun.objects.prefetch_related("results")
        return paginated(self, runs, EvaluationRunOutputSerializer)

    @extend_schema(
        request=EvaluationRunInputSerializer, responses={202: EvaluationRunOutputSerializer}
    )
    def post(self, request):
        serializer = self.EvaluationRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = evaluation_run_create(**serializer.validated_data, user=request.user)
        return Response(EvaluationRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


EvaluationRunDetailApi, EvaluationRunCancelApi = job_api_views(
    queryset=EvaluationRun.objects.prefetch_related("results"),
    serializer=EvaluationRunOutputSerializer,
    noun="evaluation run",
    stops="after its current batch",
)


class LeaderboardRowSerializer(serializers.Serializer):
    rank = serializers.IntegerField(allow_null=True)
    model_key = serializers.CharField(source="key")
    label = serializers.CharField(source="entry.label")
    info = serializers.JSONField(source="entry.info")
    scores = serializers.DictField(child=serializers.FloatField(allow_null=True))
    deltas = serializers.DictField(child=serializers.FloatField(allow_null=True))
    mean = serializers.FloatField(allow_null=True)
    mean_delta = serializers.FloatField(allow_null=True)


class LeaderboardOutputSerializer(serializers.Serializer):
    mode = serializers.CharField()
    split = serializers.CharField()
    tasks = serializers.ListField(child=serializers.CharField())
    all_tasks = serializers.ListField(child=serializers.CharField())
    rows = LeaderboardRowSerializer(many=True)


class LeaderboardApi(SieveApi):
    """Models × tasks (main score, nDCG@10 as a fraction), mean, rank and Δ to the base model."""

    @extend_schema(
        parameters=[
            OpenApiParameter("tasks", str, many=True, description="Only these tasks (repeat)."),
            OpenApiParameter("mode", str, enum=EvaluationMode.values),
        ],
        responses=LeaderboardOutputSerializer,
    )
    def get(self, request):
        mode = request.query_params.get("mode") or EvaluationMode.FULL
        if mode not in EvaluationMode.values:
            raise serializers.ValidationError(
                {"mode": f"one of {', '.join(EvaluationMode.values)}"}
            )
        board = reads.leaderboard_get(
            tasks=request.query_params.getlist("tasks") or None, mode=mode
        )
        rows = [
            {
                "rank": row.rank,
                "key": row.key,
                "entry": row.entry,
                "scores": dict(zip(board.tasks, row.scores, strict=True)),
                "deltas": dict(zip(board.tasks, row.deltas, strict=True)),
                "mean": row.mean,
                "mean_delta": row.mean_delta,
            }
            for row in board.rows
        ]
        data = {"mode": board.mode, "split": board.split, "tasks": board.tasks,
                "all_tasks": board.all_tasks, "rows": rows}  # fmt: skip
        return Response(LeaderboardOutputSerializer(data).data)


# --- policy comparisons ----------------------------------------------------------------------
