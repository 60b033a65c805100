"""REST API of cascade runs: list and launch (with the launch form's dry-run estimate, or only
the estimate), get, cancel, retry. Same services as the pages (``create.py``, ``retry.py``);
curators and admins write, viewers read, annotators nothing.

A stage is sent as its settings: the endpoint, the model, prices, concurrency … and the NAME
of the environment variable that holds its key on the workers (``api_key_env``). A key is
never accepted in a request nor returned: a field such as ``api_key`` is refused.
"""

from decimal import Decimal

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.api import (
    CanCurate,
    JobOutputSerializer,
    NewestFirstPagination,
    SieveApi,
    filtered_by_ids,
    job_api_views,
    paginated,
    refuse_unknown_fields,
)

from ..llm.stages import StageSettings, stage_settings_from_env, stages_from_env
from ..models import CascadeMode, CascadeRun, Dataset
from .create import (
    DEFAULT_FALSE_NEGATIVE_TAGS,
    DEFAULT_FLAG_RATE,
    DEFAULT_FORWARD_TAGS,
    DEFAULT_OUTPUT_TOKENS_PER_CALL,
    TAGS,
    cascade_estimate,
    cascade_run_create,
)
from .retry import cascade_run_retry, cascade_run_retryable
from .selectors import cascade_run_stage_rows
from .views import WEB_ESTIMATE_SAMPLE

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


@extend_schema_field({"type": "string", "pattern": "^(" + "|".join(TAGS) + ")$"})
class CascadeTagField(serializers.ChoiceField):
    # A pattern, not an enum: drf-spectacular would name one choice set twice (once per
    # tag list) and warn.
    def __init__(self, **kwargs):
        super().__init__(choices=TAGS, **kwargs)


# --- output ----------------------------------------------------------------------------------


class CascadeStageSettingsOutputSerializer(serializers.Serializer):
    # Older runs may lack a setting added since: such a key is left out, never invented.
    number = serializers.IntegerField()
    model = serializers.CharField()
    base_url = serializers.CharField()
    api_key_env = serializers.CharField(
        required=False, help_text="The variable that holds the key on the workers (not the key)."
    )
    price_in_per_m = serializers.CharField(required=False, help_text="USD per 1M input tokens.")
    price_out_per_m = serializers.CharField(required=False, help_text="USD per 1M output tokens.")
    concurrency = serializers.IntegerField(required=False)
    rpm = serializers.IntegerField(required=False, help_text="Requests per minute; 0: no limit.")
    json_mode = serializers.BooleanField(required=False)
    max_tokens = serializers.IntegerField(required=False)
    temperature = serializers.FloatField(required=False)
    timeout_s = serializers.FloatField(required=False)
    max_attempts = serializers.IntegerField(required=False)
    backoff_base_s = serializers.FloatField(required=False)
    batch_max_requests = serializers.IntegerField(required=False)


class CascadeStageStatsOutputSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    model = serializers.CharField()
    base_url = serializers.CharField()
    items = serializers.IntegerField(help_text="Queries this stage took up.")
    judged = serializers.IntegerField()
    flagged = serializers.IntegerField(help_text="Judged queries sent on to the next stage.")
    unparseable = serializers.IntegerField()
    failed = serializers.IntegerField()
    skipped = serializers.IntegerField(help_text="Not asked: the budget was reached.")
    paid_calls = serializers.IntegerField()
    cached_calls = serializers.IntegerField(help_text="Answered from the ledger, for free.")
    batch_missing = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=14, decimal_places=6)


class CascadeRunOutputSerializer(JobOutputSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    stages = CascadeStageSettingsOutputSerializer(many=True)
    mode = serializers.CharField()
    forward_tags = serializers.ListField(child=serializers.CharField())
    false_negative_tags = serializers.ListField(child=serializers.CharField())
    max_negatives = serializers.IntegerField()
    max_positives = serializers.IntegerField(allow_null=True, help_text="null: all of them.")
    budget_usd = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    estimate = serializers.JSONField(help_text="The dry-run estimate the run was launched with.")
    cost_usd = serializers.DecimalField(max_digits=12, decimal_places=6)
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    stage_stats = serializers.SerializerMethodField(
        help_text="Per stage: its counts so far (zeros before it started) and what it cost."
    )

    @extend_schema_field(CascadeStageStatsOutputSerializer(many=True))
    def get_stage_stats(self, run):
        return CascadeStageStatsOutputSerializer(cascade_run_stage_rows(run=run), many=True).data


class CascadeRunDetailOutputSerializer(CascadeRunOutputSerializer):
    retryable = serializers.SerializerMethodField(
        help_text="Once the run ended: the items a retry would take up, by status "
        "(failed, pending, skipped by the budget)."
    )

    @extend_schema_field(serializers.DictField(child=serializers.IntegerField()))
    def get_retryable(self, run):
        return cascade_run_retryable(run=run)


# --- list and launch -------------------------------------------------------------------------


class CascadeStageInputSerializer(serializers.Serializer):
    """One stage's settings; what is left out keeps the environment's value for that stage
    (``SIEVE_LLM_STAGE<n>_*``), as on the launch form."""

    number = serializers.IntegerField(
        required=False, min_value=1, help_text="Its place in the list (1, 2, …); may be left out."
    )
    model = serializers.CharField(required=False, max_length=200)
    base_url = serializers.RegexField(
        r"^https?://\S+$", required=False, max_length=500,
        error_messages={"invalid": "An http:// or https:// address."},
    )  # fmt: skip
    api_key_env = serializers.RegexField(
        ENV_NAME, required=False, max_length=128,
        help_text="The NAME of the environment variable that holds the key on the workers.",
        error_messages={"invalid": "Name the environment variable, never the key itself."},
    )  # fmt: skip
    price_in_per_m = serializers.DecimalField(
        required=False, min_value=Decimal(0), max_digits=12, decimal_places=6
    )
    price_out_per_m = serializers.DecimalField(
        required=False, min_value=Decimal(0), max_digits=12, decimal_places=6
    )
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=1024)
    rpm = serializers.IntegerField(required=False, min_value=0)
    json_mode = serializers.BooleanField(required=False)
    max_tokens = serializers.IntegerField(required=False, min_value=16, max_value=131072)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    timeout_s = serializers.FloatField(required=False, min_value=0.1)
    max_attempts = serializers.IntegerField(required=False, min_value=1, max_value=100)
    backoff_base_s = serializers.FloatField(required=False, min_value=0)
    batch_max_requests = serializers.IntegerField(required=False, min_value=1)

    def to_internal_value(self, data):
        refuse_unknown_fields(self, data)
        return super().to_internal_value(data)


def decimal_text(value: Decimal) -> str:
    """A price as the form stores it: "0.15", not DRF's quantized "0.150000" nor "1.5E-1"."""
    return format(value.normalize(), "f")


def stages_over_environment(given: list[dict] | None) -> list[StageSettings]:
    """The stages a request asks for, each over the environment's settings of its number;
    none given: the environment's stages (the launch form's defaults)."""
    try:
        if given is None:
            return stages_from_env()
        stages = []
        for number, changes in enumerate(given, start=1):
            if changes.get("number", number) != number:
                raise serializers.ValidationError(
                    f"stage {changes['number']} is in place {number}: list stages in order"
                )
            for price in ("price_in_per_m", "price_out_per_m"):
                if price in changes:
                    changes[price] = decimal_text(changes[price])
            changes["number"] = number
            stages.append(stage_settings_from_env(number).with_changes(**changes))
        return stages
    except ValueError as error:  # a malformed SIEVE_LLM_STAGE<n>_* variable on the server
        raise serializers.ValidationError(f"the server's stage settings: {error}") from None


class CascadeRunListCreateApi(SieveApi):
    """Cascade runs, newest first. POST launches one on the `llm` queue (202), after the
    launch form's dry-run estimate; with `estimate_only` it answers the estimate alone (200)
    and starts nothing."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser]

    class CascadeRunInputSerializer(serializers.Serializer):
        dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
        stages = CascadeStageInputSerializer(
            many=True, required=False, allow_empty=False,
            help_text="In order; left out: the environment's stages, as on the launch form.",
        )  # fmt: skip
        mode = serializers.ChoiceField(
            choices=CascadeMode.choices, default=CascadeMode.ONLINE,
            help_text="batch: the OpenAI Batch API at half price, answers within 24 h.",
        )  # fmt: skip
        forward_tags = serializers.ListField(
            child=CascadeTagField(), allow_empty=False,
            default=lambda: list(DEFAULT_FORWARD_TAGS),
            help_text="A query goes on to the next stage when a negative gets one of these.",
        )  # fmt: skip
        false_negative_tags = serializers.ListField(
            child=CascadeTagField(), allow_empty=False,
            default=lambda: list(DEFAULT_FALSE_NEGATIVE_TAGS),
            help_text="Tags that make a negative's judgment 'relevant' (a false negative).",
        )  # fmt: skip
        max_negatives = serializers.IntegerField(min_value=1, max_value=100, default=25)
        max_positives = serializers.IntegerField(
            min_value=1, allow_null=True, default=None,
            help_text="Positives shown per prompt (first by id); null: all of them.",
        )  # fmt: skip
        budget_usd = serializers.DecimalField(
            max_digits=12, decimal_places=4, min_value=Decimal("0.0001"), allow_null=True,
            default=None, help_text="The run stops before a call would pass it; null: no cap.",
        )  # fmt: skip
        output_tokens_per_call = serializers.IntegerField(
            min_value=1, default=DEFAULT_OUTPUT_TOKENS_PER_CALL,
            help_text="Estimate only: output tokens assumed per call.",
        )  # fmt: skip
        flag_rate = serializers.FloatField(
            min_value=0, max_value=1, default=DEFAULT_FLAG_RATE,
            help_text="Estimate only: share of queries each stage forwards.",
        )  # fmt: skip
        estimate_only = serializers.BooleanField(
            default=False, help_text="Answer the estimate (200) and launch nothing."
        )

        def to_internal_value(self, data):
            refuse_unknown_fields(self, data)
            return super().to_internal_value(data)

        def validate(self, data):
            try:
                data["stages"] = stages_over_environment(data.get("stages"))
            except serializers.ValidationError as error:
                raise serializers.ValidationError({"stages": error.detail}) from None
            return data

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int, description="Only this dataset's runs.")],
        responses=CascadeRunOutputSerializer(many=True),
    )
    def get(self, request):
        runs = filtered_by_ids(request, CascadeRun.objects.all(), "dataset")
        return paginated(self, runs, CascadeRunOutputSerializer)

    @extend_schema(
        request=CascadeRunInputSerializer,
        responses={
            202: CascadeRunDetailOutputSerializer,
            200: OpenApiResponse(
                inline_serializer("CascadeEstimateOutput", {"estimate": serializers.JSONField()}),
                description="estimate_only: the dry-run cost, per stage and in all.",
            ),
        },
    )
    def post(self, request):
        serializer = self.CascadeRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        estimate = cascade_estimate(
            dataset=data["dataset"],
            stages=data["stages"],
            max_negatives=data["max_negatives"],
            max_positives=data["max_positives"],
            mode=data["mode"],
            output_tokens_per_call=data["output_tokens_per_call"],
            flag_rate=data["flag_rate"],
            sample_limit=WEB_ESTIMATE_SAMPLE,
        )
        if data["estimate_only"]:
            return Response({"estimate": estimate})
        run = cascade_run_create(
            dataset=data["dataset"],
            stages=data["stages"],
            mode=data["mode"],
            forward_tags=data["forward_tags"],
            false_negative_tags=data["false_negative_tags"],
            max_negatives=data["max_negatives"],
            max_positives=data["max_positives"],
            budget_usd=data["budget_usd"],
            estimate=estimate,
            user=request.user,
        )
        return Response(CascadeRunDetailOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


CascadeRunDetailApi, CascadeRunCancelApi = job_api_views(
    queryset=CascadeRun.objects.all(),
    serializer=CascadeRunDetailOutputSerializer,
    noun="cascade run",
    stops="at its next commit (about a second); judged items stay",
)


class CascadeRunRetryApi(SieveApi):
    """Finish what an ended run left: its failed and pending items and, with a larger
    budget, the items the budget skipped. The same run is queued again (202); answers in the
    ledger are used again and nothing judged is asked again."""

    permission_classes = [IsAuthenticated, CanCurate]
    parser_classes = [JSONParser]

    class CascadeRunRetryInputSerializer(serializers.Serializer):
        budget_usd = serializers.DecimalField(
            max_digits=12, decimal_places=4, required=False, allow_null=True,
            help_text="A larger budget also takes up the items the old one skipped.",
        )  # fmt: skip

    @extend_schema(
        request=CascadeRunRetryInputSerializer, responses={202: CascadeRunDetailOutputSerializer}
    )
    def post(self, request, pk: int):
        run = get_object_or_404(CascadeRun, pk=pk)
        serializer = self.CascadeRunRetryInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = cascade_run_retry(run=run, budget_usd=serializer.validated_data.get("budget_usd"))
        return Response(CascadeRunDetailOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)
