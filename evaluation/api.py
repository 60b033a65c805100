"""REST API for training runs, evaluation runs and the leaderboard. Same services and
selectors as the HTML pages (``training/services.py``, ``evaluation/services.py``,
``evaluation/selectors.py``)."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.api import CanCurate
from curation.api import JobOutputSerializer, NewestFirstPagination, SieveApi, _paginated
from curation.models import Dataset, Snapshot
from training.models import TrainingRun
from training.services import training_run_cancel, training_run_create

from . import selectors as reads
from .models import EvaluationMode, EvaluationRun, PolicyComparison
from .services import evaluation_run_cancel, evaluation_run_create

# --- training --------------------------------------------------------------------------------


class TrainingRunOutputSerializer(JobOutputSerializer):
    name = serializers.CharField()
    snapshot = serializers.IntegerField(source="snapshot_id")
    base_model = serializers.CharField()
    method = serializers.CharField()
    config = serializers.JSONField()
    step = serializers.IntegerField()
    total_steps = serializers.IntegerField()
    resumed_from_step = serializers.IntegerField(allow_null=True)
    metrics = serializers.JSONField()
    history = serializers.JSONField(help_text="Loss curve: one point per logging step.")
    artifact_path = serializers.CharField()
    artifact_kind = serializers.CharField()


class TrainingRunListCreateApi(SieveApi):
    """Training runs, newest first; POST launches one on a snapshot (the `gpu` queue)."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, FormParser]

    class TrainingRunInputSerializer(serializers.Serializer):
        snapshot = serializers.PrimaryKeyRelatedField(queryset=Snapshot.objects.all())
        name = serializers.CharField(required=False, allow_blank=True, default="")
        config = serializers.JSONField(
            required=False, default=dict,
            help_text="Hyper-parameters (training.core.TrainConfig); missing ones take defaults.",
        )  # fmt: skip

    @extend_schema(responses=TrainingRunOutputSerializer(many=True))
    def get(self, request):
        return _paginated(self, TrainingRun.objects.all(), TrainingRunOutputSerializer)

    @extend_schema(request=TrainingRunInputSerializer, responses={202: TrainingRunOutputSerializer})
    def post(self, request):
        serializer = self.TrainingRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = training_run_create(
            snapshot=data["snapshot"], config=data["config"], name=data["name"], user=request.user
        )
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class TrainingRunDetailApi(SieveApi):
    """One training run: status, step, loss curve, throughput, artifact."""

    @extend_schema(responses=TrainingRunOutputSerializer)
    def get(self, request, pk: int):
        return Response(TrainingRunOutputSerializer(get_object_or_404(TrainingRun, pk=pk)).data)


class TrainingRunCancelApi(SieveApi):
    """Ask a training run to stop; it stops within one step."""

    permission_classes = [IsAuthenticated, CanCurate]

    @extend_schema(request=None, responses={202: TrainingRunOutputSerializer})
    def post(self, request, pk: int):
        run = get_object_or_404(TrainingRun, pk=pk)
        training_run_cancel(run=run)
        run.refresh_from_db()
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


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

    @extend_schema(responses=EvaluationRunOutputSerializer(many=True))
    def get(self, request):
        runs = EvaluationRun.objects.prefetch_related("results")
        return _paginated(self, runs, EvaluationRunOutputSerializer)

    @extend_schema(
        request=EvaluationRunInputSerializer, responses={202: EvaluationRunOutputSerializer}
    )
    def post(self, request):
        serializer = self.EvaluationRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = evaluation_run_create(**serializer.validated_data, user=request.user)
        return Response(EvaluationRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class EvaluationRunDetailApi(SieveApi):
    """One evaluation run with its per-task scores."""

    @extend_schema(responses=EvaluationRunOutputSerializer)
    def get(self, request, pk: int):
        run = get_object_or_404(EvaluationRun.objects.prefetch_related("results"), pk=pk)
        return Response(EvaluationRunOutputSerializer(run).data)


class EvaluationRunCancelApi(SieveApi):
    """Ask an evaluation run to stop."""

    permission_classes = [IsAuthenticated, CanCurate]

    @extend_schema(request=None, responses={202: EvaluationRunOutputSerializer})
    def post(self, request, pk: int):
        run = get_object_or_404(EvaluationRun, pk=pk)
        evaluation_run_cancel(run=run)
        run.refresh_from_db()
        return Response(EvaluationRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


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


class PolicyComparisonOutputSerializer(JobOutputSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    name = serializers.CharField()
    policies = serializers.JSONField()
    max_false_negatives = serializers.IntegerField()
    train_config = serializers.JSONField()
    eval_tasks = serializers.JSONField()
    eval_mode = serializers.CharField()


class PolicyComparisonListCreateApi(SieveApi):
    """Policy comparisons, newest first; POST starts one (snapshots per policy, a fine-tune on
    each, evaluations of each and of the base model). Its ``stats`` name what it started."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser]

    class PolicyComparisonInputSerializer(serializers.Serializer):
        dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
        name = serializers.CharField(required=False, allow_blank=True, default="")
        policies = serializers.ListField(
            child=serializers.CharField(), required=False,
            default=["default", "remove_hn", "relabel"],
        )  # fmt: skip
        max_false_negatives = serializers.IntegerField(required=False, default=7)
        train_config = serializers.JSONField(required=False, default=dict)
        eval_tasks = serializers.ListField(child=serializers.CharField())
        eval_mode = serializers.ChoiceField(choices=EvaluationMode.values, default="full")
        eval_config = serializers.JSONField(required=False, default=dict)

    @extend_schema(responses=PolicyComparisonOutputSerializer(many=True))
    def get(self, request):
        return _paginated(self, PolicyComparison.objects.all(), PolicyComparisonOutputSerializer)

    @extend_schema(
        request=PolicyComparisonInputSerializer,
        responses={202: PolicyComparisonOutputSerializer},
    )
    def post(self, request):
        from .comparisons import policy_comparison_create

        serializer = self.PolicyComparisonInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comparison = policy_comparison_create(user=request.user, **serializer.validated_data)
        return Response(
            PolicyComparisonOutputSerializer(comparison).data, status=status.HTTP_202_ACCEPTED
        )


class PolicyComparisonDetailApi(SieveApi):
    """One policy comparison: its plan, status, and the ids of what it started."""

    @extend_schema(responses=PolicyComparisonOutputSerializer)
    def get(self, request, pk: int):
        comparison = get_object_or_404(PolicyComparison, pk=pk)
        return Response(PolicyComparisonOutputSerializer(comparison).data)
