"""REST API for training runs: the same services as the HTML pages (``training/services.py``)."""

import json

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.fields import empty
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

from .core.config import ConfigField, TrainConfig, config_fields
from .models import TrainingRun
from .retry import training_run_retry, training_run_retryable
from .services import training_more_snapshots, training_run_create

# --- the training config ---------------------------------------------------------------------


def _api_field(config_field: ConfigField) -> serializers.Field:
    """How the OpenAPI schema shows one hyper-parameter (type, limits, choices, default)."""
    common = {
        "required": False,
        "label": config_field.label,
        "help_text": config_field.help or None,
    }
    if config_field.choices:
        return serializers.ChoiceField(choices=config_field.choices, **common)
    if config_field.kind in ("int", "float"):
        field = serializers.IntegerField if config_field.kind == "int" else serializers.FloatField
        return field(min_value=config_field.minimum, max_value=config_field.maximum, **common)
    if config_field.kind == "bool":
        return serializers.BooleanField(**common)
    if config_field.kind == "list":
        return serializers.ListField(child=serializers.CharField(), **common)
    return serializers.CharField(
        max_length=config_field.max_length,
        allow_blank=True,
        allow_null=config_field.kind == "optional_str",
        **common,
    )


class TrainConfigSerializer(serializers.Serializer):
    """Hyper-parameters (``TrainConfig``); missing ones take the defaults. The fields are made
    from TrainConfig's schema for the OpenAPI description; a value is checked by the schema
    itself (``TrainConfig.from_dict``), so the API refuses exactly what the form and the
    command line refuse, with the same 400 ``{"message", "field"}`` as the service."""

    def get_fields(self):
        return {config_field.name: _api_field(config_field) for config_field in config_fields()}

    def get_value(self, dictionary):
        # A form-encoded request sends the config as one JSON text.
        return dictionary.get(self.field_name, empty)

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                data = None
        TrainConfig.from_dict(data)  # raises ConfigError (an ApplicationError) naming the field
        return TrainConfig.parse_partial(data)


# --- training --------------------------------------------------------------------------------


class TrainingRunOutputSerializer(JobOutputSerializer):
    name = serializers.CharField()
    snapshot = serializers.IntegerField(source="snapshot_id")
    more_snapshots = serializers.SerializerMethodField(
        help_text="Further snapshots trained on in the same run, in order."
    )
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
    retryable = serializers.SerializerMethodField(
        help_text="Once a run failed or was cancelled: {from_step} — the step a retry resumes "
        "from (0: from the start); empty otherwise."
    )

    def get_retryable(self, run) -> dict[str, int]:
        return training_run_retryable(run=run)

    def get_more_snapshots(self, run) -> list[int]:
        return [link.snapshot_id for link in run.more_snapshots.all()]


class TrainingRunListCreateApi(SieveApi):
    """Training runs, newest first; POST launches one on a snapshot (the `gpu` queue)."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, FormParser]

    class TrainingRunInputSerializer(serializers.Serializer):
        snapshot = serializers.PrimaryKeyRelatedField(queryset=Snapshot.objects.all())
        more_snapshots = serializers.ListField(
            child=serializers.IntegerField(),
            required=False,
            default=list,
            help_text="Further snapshot ids to train on in the same run, in order "
            "(config.task_order, config.mixed_steps).",
        )
        name = serializers.CharField(required=False, allow_blank=True, default="")
        config = TrainConfigSerializer(required=False, default=dict)

    @extend_schema(responses=TrainingRunOutputSerializer(many=True))
    def get(self, request):
        runs = TrainingRun.objects.prefetch_related("more_snapshots")
        return paginated(self, runs, TrainingRunOutputSerializer)

    @extend_schema(request=TrainingRunInputSerializer, responses={202: TrainingRunOutputSerializer})
    def post(self, request):
        serializer = self.TrainingRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        run = training_run_create(
            snapshot=data["snapshot"],
            config=data["config"],
            name=data["name"],
            user=request.user,
            more_snapshots=training_more_snapshots(data["more_snapshots"]),
        )
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


TrainingRunDetailApi, TrainingRunCancelApi = job_api_views(
    queryset=TrainingRun.objects.prefetch_related("more_snapshots"),
    serializer=TrainingRunOutputSerializer,
    noun="training run",
    stops="within one step",
)


class TrainingRunRetryApi(SieveApi):
    """Run again a run that failed (it resumes from its newest complete checkpoint) or was
    cancelled (from the start): the same run is queued again (202)."""

    permission_classes = [IsAuthenticated, CanCurate]

    @extend_schema(request=None, responses={202: TrainingRunOutputSerializer})
    def post(self, request, pk: int):
        run = training_run_retry(run=get_object_or_404(TrainingRun, pk=pk))
        return Response(TrainingRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)
