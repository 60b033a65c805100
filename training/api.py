"""REST API for training runs: the same services as the HTML pages (``training/services.py``)."""

from drf_spectacular.utils import extend_schema
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
from curation.models import Snapshot

from .models import TrainingRun
from .services import training_run_create

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
        return paginated(self, TrainingRun.objects.all(), TrainingRunOutputSerializer)

    @extend_schema(request=TrainingRunInputSerializer, responses={202: TrainingRunOutputSerializer})
    def post(self, request):
        serializer = self.TrainingRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = training_run_create(
            snapshot=data["snapshot"], config=data["config"], name=data["name"], user=request.user
        )
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


TrainingRunDetailApi, TrainingRunCancelApi = job_api_views(
    queryset=TrainingRun.objects.all(),
    serializer=TrainingRunOutputSerializer,
    noun="training run",
    stops="within one step",
)
