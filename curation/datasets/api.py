"""REST API: datasets, imports, snapshots. Same selectors and services as the HTML views;
input and output serializers sit inside the view that uses them (HackSoft style).

Serializers shared by several views (a job, a snapshot) live at module level and every
serializer has a distinct class name, because drf-spectacular names schema components after the
class: two nested ``OutputSerializer`` classes would collide in the OpenAPI document.
"""

from datetime import datetime

from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.api import (
    CanCurate,
    JobOutputSerializer,
    NewestFirstPagination,
    OldestFirstPagination,
    QueryIdPagination,
    SieveApi,
    filtered_by_ids,
    job_api_views,
    paginated,
)

from ..models import (
    Dataset,
    DatasetFormat,
    ExportFormat,
    ExportJob,
    ImportJob,
    Query,
    Snapshot,
    SnapshotPolicy,
)
from . import selectors as reads
from .snapshots import export_job_create
from .upload_retention import import_job_retry, import_job_retry_state
from .uploads import ACCEPTED_HELP, ACCEPTED_SUFFIXES, import_upload_start, upload_suffix
from .views import snapshot_file_response


class ImportJobOutputSerializer(JobOutputSerializer):
    dataset_name = serializers.CharField()
    corpus_name = serializers.CharField()
    format = serializers.CharField(help_text="Empty: detected from the file.")
    source_name = serializers.CharField()
    options = serializers.JSONField()
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)
    retryable = serializers.SerializerMethodField(
        help_text="Failed or cancelled, and its file is still kept: POST <id>/retry runs it again."
    )
    file_kept_until = serializers.SerializerMethodField(
        help_text="When the uploaded file of a failed or cancelled import will be deleted."
    )

    def get_retryable(self, job) -> bool:
        return import_job_retry_state(job=job).possible

    def get_file_kept_until(self, job) -> datetime | None:
        return import_job_retry_state(job=job).kept_until


class ExportJobOutputSerializer(JobOutputSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    policy = serializers.CharField()
    format = serializers.CharField()
    max_false_negatives = serializers.IntegerField()
    snapshot = serializers.IntegerField(source="snapshot_id", allow_null=True)


class SnapshotOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    dataset = serializers.IntegerField(source="dataset_id")
    dataset_name = serializers.CharField(source="dataset.name")
    policy = serializers.CharField()
    max_false_negatives = serializers.IntegerField()
    format = serializers.CharField()
    sha256 = serializers.CharField()
    size_bytes = serializers.IntegerField()
    manifest = serializers.JSONField()
    created_at = serializers.DateTimeField()
    download_url = serializers.SerializerMethodField()

    def get_download_url(self, snapshot) -> str:
        return reverse("api:snapshot-download", args=[snapshot.pk])


class DatasetOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    corpus = serializers.CharField(source="corpus.name")
    format = serializers.CharField()
    source = serializers.CharField()
    description = serializers.CharField()
    query_count = serializers.IntegerField()
    positive_count = serializers.IntegerField()
    negative_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()


# --- datasets --------------------------------------------------------------------------------


class DatasetListApi(SieveApi):
    """Datasets with their query, positive and negative counts."""

    pagination_class = OldestFirstPagination

    @extend_schema(responses=DatasetOutputSerializer(many=True))
    def get(self, request):
        return paginated(self, Dataset.objects.select_related("corpus"), DatasetOutputSerializer)


class DatasetDetailApi(SieveApi):
    """One dataset."""

    @extend_schema(responses=DatasetOutputSerializer)
    def get(self, request, pk: int):
        dataset = get_object_or_404(Dataset.objects.select_related("corpus"), pk=pk)
        return Response(DatasetOutputSerializer(dataset).data)


class DatasetQueryListApi(SieveApi):
    """A dataset's queries in query_id order, with each query's positive and negative counts."""

    pagination_class = QueryIdPagination

    class QueryOutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        query_id = serializers.CharField()
        text = serializers.CharField()
        positive_count = serializers.IntegerField()
        negative_count = serializers.IntegerField()

    @extend_schema(responses=QueryOutputSerializer(many=True))
    def get(self, request, pk: int):
        dataset = get_object_or_404(Dataset, pk=pk)
        return paginated(
            self,
            Query.objects.filter(dataset=dataset),
            self.QueryOutputSerializer,
            # Counts for this page's queries only, in one grouped query.
            prepare=lambda page: reads.query_role_counts_attach(queries=page),
        )


# --- imports ---------------------------------------------------------------------------------


class ImportListCreateApi(SieveApi):
    """Import jobs, newest first; POST uploads a file and starts its import."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [MultiPartParser, FormParser]

    class ImportInputSerializer(serializers.Serializer):
        file = serializers.FileField(help_text=ACCEPTED_HELP)
        dataset_name = serializers.CharField(max_length=200)
        corpus_name = serializers.CharField(max_length=200, required=False, default="")
        format = serializers.ChoiceField(
            choices=DatasetFormat.choices, required=False, default="", allow_blank=True
        )
        split = serializers.CharField(max_length=50, required=False)
        min_relevance = serializers.IntegerField(min_value=0, required=False)

        def validate_file(self, uploaded):
            if upload_suffix(uploaded.name) is None:
                raise serializers.ValidationError(
                    "unsupported file type; expected one of " + ", ".join(ACCEPTED_SUFFIXES)
                )
            return uploaded

    @extend_schema(responses=ImportJobOutputSerializer(many=True))
    def get(self, request):
        return paginated(self, ImportJob.objects.all(), ImportJobOutputSerializer)

    @extend_schema(
        request={"multipart/form-data": ImportInputSerializer},
        responses={202: ImportJobOutputSerializer},
        description="Upload a file and start its import; poll the returned job.",
    )
    def post(self, request):
        serializer = self.ImportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        options = {key: data[key] for key in ("split", "min_relevance") if key in data}
        job = import_upload_start(
            uploaded_file=data["file"],
            dataset_name=data["dataset_name"],
            format=data["format"],
            corpus_name=data["corpus_name"],
            options=options,
            user=request.user,
        )
        return Response(ImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


ImportDetailApi, ImportCancelApi = job_api_views(
    queryset=ImportJob.objects.all(), serializer=ImportJobOutputSerializer, noun="import job"
)


class ImportRetryApi(SieveApi):
    """Run a failed or cancelled import again from its kept file: the same job, queued again
    (poll it as before). Refused with a message naming the file when the file is gone."""

    permission_classes = [IsAuthenticated, CanCurate]

    @extend_schema(request=None, responses={202: ImportJobOutputSerializer})
    def post(self, request, pk: int):
        job = import_job_retry(job=get_object_or_404(ImportJob, pk=pk))
        return Response(ImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


# --- snapshots and export jobs -------------------------------------------------------------


class SnapshotListCreateApi(SieveApi):
    """Snapshots, newest first; POST freezes a dataset under a policy (an export job)."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    class SnapshotInputSerializer(serializers.Serializer):
        dataset = serializers.PrimaryKeyRelatedField(queryset=Dataset.objects.all())
        policy = serializers.ChoiceField(choices=SnapshotPolicy.choices)
        format = serializers.ChoiceField(choices=ExportFormat.choices)
        max_false_negatives = serializers.IntegerField(min_value=0, default=7)
        held_out = serializers.FloatField(
            min_value=0, max_value=0.5, default=0.0,
            help_text="Share of the queries left out of the training file and offered as the "
            "evaluation task heldout:<snapshot id> (picked by the seed and each query's id).",
        )  # fmt: skip
        held_out_seed = serializers.IntegerField(min_value=0, default=0)

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int, description="Only this dataset's snapshots.")],
        responses=SnapshotOutputSerializer(many=True),
    )
    def get(self, request):
        snapshots = filtered_by_ids(request, Snapshot.objects.select_related("dataset"), "dataset")
        return paginated(self, snapshots, SnapshotOutputSerializer)

    @extend_schema(
        request=SnapshotInputSerializer,
        responses={202: ExportJobOutputSerializer},
        description="Freeze a dataset under a policy; the export job creates the snapshot.",
    )
    def post(self, request):
        serializer = self.SnapshotInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = export_job_create(**serializer.validated_data, user=request.user)
        return Response(ExportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class SnapshotDetailApi(SieveApi):
    """One snapshot: policy, format, sha256 and manifest with counts."""

    @extend_schema(responses=SnapshotOutputSerializer)
    def get(self, request, pk: int):
        snapshot = get_object_or_404(Snapshot.objects.select_related("dataset"), pk=pk)
        return Response(SnapshotOutputSerializer(snapshot).data)


class SnapshotDownloadApi(SieveApi):
    """The snapshot file, as an attachment named <dataset>-<policy>-<sha12>.jsonl."""

    def perform_content_negotiation(self, request, force=False):
        # The answer is the file whatever the client says it accepts (curl, browsers,
        # "application/octet-stream"); JSON is only used for errors.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        responses={
            (200, "application/jsonl"): OpenApiResponse(
                OpenApiTypes.BINARY, description="The snapshot file, as an attachment."
            )
        }
    )
    def get(self, request, pk: int):
        snapshot = get_object_or_404(Snapshot.objects.select_related("dataset"), pk=pk)
        return snapshot_file_response(snapshot)


class ExportJobListApi(SieveApi):
    """Export jobs, newest first."""

    pagination_class = NewestFirstPagination

    @extend_schema(responses=ExportJobOutputSerializer(many=True))
    def get(self, request):
        return paginated(self, ExportJob.objects.all(), ExportJobOutputSerializer)


ExportJobDetailApi, ExportJobCancelApi = job_api_views(
    queryset=ExportJob.objects.all(), serializer=ExportJobOutputSerializer, noun="export job"
)
