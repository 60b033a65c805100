"""REST API of mining runs: list and launch, get, cancel. Same service as the "Mine negatives"
form (``services.mining_run_create``, which validates); curators and admins write, viewers
read, annotators nothing."""

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
    filtered_by_ids,
    job_api_views,
    paginated,
)

from ..models import Dataset, MiningRun, MiningSampling
from .services import mining_run_create


class MiningRunOutputSerializer(JobOutputSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    model_name = serializers.CharField()
    query_prefix = serializers.CharField()
    passage_prefix = serializers.CharField()
    batch_size = serializers.IntegerField()
    max_seq_length = serializers.IntegerField(allow_null=True)
    approximate = serializers.BooleanField()
    range_min = serializers.IntegerField()
    range_max = serializers.IntegerField()
    num_negatives = serializers.IntegerField()
    absolute_margin = serializers.FloatField(allow_null=True)
    relative_margin = serializers.FloatField(allow_null=True)
    max_score = serializers.FloatField(allow_null=True)
    min_score = serializers.FloatField(allow_null=True)
    sampling = serializers.CharField()
    seed = serializers.IntegerField()
    teacher_flag_ratio = serializers.FloatField(allow_null=True)
    # The figures, once the run ended (all of them are in stats).
    negatives_added = serializers.IntegerField(source="stats.negatives_added", default=0)
    queries_with_new_negatives = serializers.IntegerField(
        source="stats.queries_with_new_negatives", default=0
    )
    teacher_judgments = serializers.IntegerField(source="stats.teacher_judgments", default=0)


class MiningRunListCreateApi(SieveApi):
    """Mining runs, newest first; POST mines a dataset's hard negatives with an embedding
    model (the `default` queue; 202 with the job to poll)."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, FormParser]

    class MiningRunInputSerializer(serializers.Serializer):
        dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
        model_name = serializers.CharField(
            max_length=500, required=False, allow_blank=True, default="",
            help_text="A Hugging Face id or a folder on the workers; empty: the configured "
            "default (all-MiniLM-L6-v2, offline).",
        )  # fmt: skip
        # Prefixes end in a space that matters ("query: "): never trimmed.
        query_prefix = serializers.CharField(
            max_length=200, required=False, allow_blank=True, allow_null=True, default=None,
            trim_whitespace=False,
            help_text="null: the model family's own (E5: 'query: '); '': none.",
        )  # fmt: skip
        passage_prefix = serializers.CharField(
            max_length=200, required=False, allow_blank=True, allow_null=True, default=None,
            trim_whitespace=False,
            help_text="null: the model family's own (E5: 'passage: '); '': none.",
        )  # fmt: skip
        batch_size = serializers.IntegerField(min_value=1, max_value=4096, default=64)
        max_seq_length = serializers.IntegerField(
            min_value=1, max_value=32768, allow_null=True, default=None,
            help_text="Tokens per text; null: the model's own.",
        )  # fmt: skip
        approximate = serializers.BooleanField(
            default=False, help_text="An IVF index instead of exact search (large corpora)."
        )
        range_min = serializers.IntegerField(
            min_value=0, default=0, help_text="Skip this many of the best-ranked non-positives."
        )
        range_max = serializers.IntegerField(
            min_value=1, default=100, help_text="Look no deeper than this."
        )
        num_negatives = serializers.IntegerField(
            min_value=1, default=15, help_text="Negatives per query."
        )
        absolute_margin = serializers.FloatField(
            min_value=0, allow_null=True, default=None,
            help_text="Keep a negative only if it scores at least this much below the lowest "
            "positive.",
        )  # fmt: skip
        relative_margin = serializers.FloatField(
            min_value=0, max_value=0.999, allow_null=True, default=None,
            help_text="0.05 = NV-Retriever's rule: at most 95% of the lowest positive's score.",
        )  # fmt: skip
        max_score = serializers.FloatField(allow_null=True, default=None)
        min_score = serializers.FloatField(allow_null=True, default=None)
        sampling = serializers.ChoiceField(
            choices=MiningSampling.choices, default=MiningSampling.TOP
        )
        seed = serializers.IntegerField(min_value=0, default=0)
        teacher_flag_ratio = serializers.FloatField(
            min_value=0.0001, allow_null=True, default=0.95,
            help_text="The stage-0 judge marks a negative relevant when it scores at least "
            "this fraction of its positive; null: write no judgments.",
        )  # fmt: skip

        def validate(self, data):
            if data["range_min"] >= data["range_max"]:
                raise serializers.ValidationError(
                    {"range_max": "must be larger than the range start"}
                )
            return data

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int, description="Only this dataset's runs.")],
        responses=MiningRunOutputSerializer(many=True),
    )
    def get(self, request):
        runs = filtered_by_ids(request, MiningRun.objects.all(), "dataset")
        return paginated(self, runs, MiningRunOutputSerializer)

    @extend_schema(request=MiningRunInputSerializer, responses={202: MiningRunOutputSerializer})
    def post(self, request):
        serializer = self.MiningRunInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        run = mining_run_create(**serializer.validated_data, user=request.user)
        return Response(MiningRunOutputSerializer(run).data, status=status.HTTP_202_ACCEPTED)


MiningRunDetailApi, MiningRunCancelApi = job_api_views(
    queryset=MiningRun.objects.all(),
    serializer=MiningRunOutputSerializer,
    noun="mining run",
    stops="after the chunk of queries it is writing (committed chunks stay)",
)
