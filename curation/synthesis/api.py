"""REST API of synthesis runs: list and launch, get, cancel, retry. Same service as the "Synthesize"
form (``services.synthesis_run_create``, which validates); curators and admins write, viewers
read, annotators nothing. The generator names the environment variable that holds its key
(``api_key_env``); a key is never accepted in a request nor returned."""

from decimal import Decimal

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
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

from ..models import Dataset, SynthesisNegativeMode, SynthesisRun
from .retry import synthesis_run_retry, synthesis_run_retryable
from .services import MAX_SAMPLE, synthesis_run_create


class SynthesisGeneratorOutputSerializer(serializers.Serializer):
    model = serializers.CharField()
    base_url = serializers.CharField()
    api_key_env = serializers.CharField(
        help_text="The variable that holds the key on the workers (not the key)."
    )
    price_in_per_m = serializers.CharField(help_text="USD per 1M input tokens.")
    price_out_per_m = serializers.CharField(help_text="USD per 1M output tokens.")
    concurrency = serializers.IntegerField()
    temperature = serializers.FloatField()
    max_tokens = serializers.IntegerField()
    json_mode = serializers.BooleanField()


class SynthesisRunOutputSerializer(JobOutputSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    sample_size = serializers.IntegerField()
    seed = serializers.IntegerField()
    generator = SynthesisGeneratorOutputSerializer()
    negative_mode = serializers.CharField()
    teacher_model = serializers.CharField()
    top_k = serializers.IntegerField()
    negative_max_ratio = serializers.FloatField()
    budget_usd = serializers.DecimalField(max_digits=12, decimal_places=4, allow_null=True)
    cost_usd = serializers.DecimalField(
        max_digits=12, decimal_places=6, help_text="Spent so far (kept up as answers arrive)."
    )
    # The figures, once the run ended (all of them are in stats).
    triplets_kept = serializers.IntegerField(source="stats.triplets_kept", default=0)
    queries_added = serializers.IntegerField(source="stats.queries_added", default=0)
    passages_added = serializers.IntegerField(source="stats.passages_added", default=0)
    budget_reached = serializers.BooleanField(source="stats.budget_reached", default=False)
    retryable = serializers.SerializerMethodField(
        help_text="Once the run ended: what a retry would take up (failed_calls, unfinished, "
        "passages_not_reached); empty when nothing is left."
    )

    def get_retryable(self, run) -> dict[str, int]:
        return synthesis_run_retryable(run=run)


class SynthesisGeneratorInputSerializer(serializers.Serializer):
    """The generator's endpoint; what is left out keeps the default (stage 1's settings from
    the environment, as on the form)."""

    model = serializers.CharField(required=False, max_length=200)
    base_url = serializers.RegexField(
        r"^https?://\S+$", required=False, max_length=500,
        error_messages={"invalid": "An http:// or https:// address."},
    )  # fmt: skip
    api_key_env = serializers.RegexField(
        r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", required=False, max_length=128,
        help_text="The NAME of the environment variable that holds the key on the workers.",
        error_messages={"invalid": "Name the environment variable, never the key itself."},
    )  # fmt: skip
    price_in_per_m = serializers.DecimalField(
        required=False, min_value=Decimal(0), max_digits=12, decimal_places=4
    )
    price_out_per_m = serializers.DecimalField(
        required=False, min_value=Decimal(0), max_digits=12, decimal_places=4
    )
    concurrency = serializers.IntegerField(required=False, min_value=1, max_value=512)
    temperature = serializers.FloatField(required=False, min_value=0, max_value=2)
    max_tokens = serializers.IntegerField(required=False, min_value=16, max_value=32768)
    json_mode = serializers.BooleanField(required=False)

    def to_internal_value(self, data):
        refuse_unknown_fields(self, data)
        value = super().to_internal_value(data)
        for name in ("price_in_per_m", "price_out_per_m"):
            if name in value:
                value[name] = format(value[name].normalize(), "f")  # "0.15", never "1.5E-1"
        return value


class SynthesisRunListCreateApi(SieveApi):
    """Synthesis runs, newest first; POST writes synthetic triplets for a dataset (the `llm`
    queue; 202 with the job to poll)."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser]

    class SynthesisRunInputSerializer(serializers.Serializer):
        dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
        sample_size = serializers.IntegerField(
            min_value=1, max_value=MAX_SAMPLE, default=100,
            help_text="Passages drawn (seeded) from the dataset's corpus.",
        )  # fmt: skip
        seed = serializers.IntegerField(min_value=0, default=0)
        negative_mode = serializers.ChoiceField(
            choices=SynthesisNegativeMode.choices, default=SynthesisNegativeMode.GENERATE,
            help_text="generate: the LLM writes a hard negative; mine: the teacher picks one "
            "from the corpus.",
        )  # fmt: skip
        teacher_model = serializers.CharField(
            max_length=500, required=False, allow_blank=True, default="",
            help_text="Embedding model of the filter; empty: the configured default.",
        )  # fmt: skip
        top_k = serializers.IntegerField(
            min_value=1, default=3,
            help_text="Keep a triplet only if its passage ranks in the top k for its query.",
        )  # fmt: skip
        negative_max_ratio = serializers.FloatField(
            min_value=0.01, max_value=1.5, default=0.95,
            help_text="…and its negative scores at most this fraction of the positive.",
        )  # fmt: skip
        budget_usd = serializers.DecimalField(
            max_digits=12, decimal_places=4, min_value=Decimal("0.0001"), allow_null=True,
            default=None, help_text="The run stops cleanly before it would spend more.",
        )  # fmt: skip
        generator = SynthesisGeneratorInputSerializer(required=False, default=dict)

        def to_internal_value(self, data):
            refuse_unknown_fields(self, data)
            return super().to_internal_value(data)

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int, description="Only this dataset's runs.")],
        responses=SynthesisRunOutputSerializer(many=True),
    )
    def get(self, request):
        runs = filtered_by_ids(request, SynthesisRun.objects.all(), "dataset")
        return paginated(self, runs, SynthesisRunOutputSerializer)

    @extend_schema(
        request=SynthesisRunInputSerializer, responses={202: SynthesisRunOutputSerializer}
    )
    def post(self, request):
        serializer = self.SynthesisRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = synthesis_run_create(**serializer.validated_data, user=request.user)
        return Response(SynthesisRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


SynthesisRunDetailApi, SynthesisRunCancelApi = job_api_views(
    queryset=SynthesisRun.objects.all(),
    serializer=SynthesisRunOutputSerializer,
    noun="synthesis run",
    stops="after the chunk of 100 passages it is working on",
)


class SynthesisRunRetryApi(SieveApi):
    """Finish what an ended run left: its failed calls, a failed or cancelled run's rest and,
    with a larger budget, the passages the budget left out. The same run is queued again
    (202); answers in the ledger are read back, triplets already written are kept."""

    permission_classes = [IsAuthenticated, CanCurate]
    parser_classes = [JSONParser]

    class SynthesisRunRetryInputSerializer(serializers.Serializer):
        budget_usd = serializers.DecimalField(
            max_digits=12, decimal_places=4, required=False, allow_null=True,
            help_text="A larger budget also reaches the passages the old one left out.",
        )  # fmt: skip

    @extend_schema(
        request=SynthesisRunRetryInputSerializer, responses={202: SynthesisRunOutputSerializer}
    )
    def post(self, request, pk: int):
        run = get_object_or_404(SynthesisRun, pk=pk)
        serializer = self.SynthesisRunRetryInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = synthesis_run_retry(run=run, budget_usd=serializer.validated_data.get("budget_usd"))
        return Response(SynthesisRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)
