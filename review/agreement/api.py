"""REST API of agreement reports: list, create (a job, or a still-valid cached report), get.
Same selectors and services as the pages; serializers nested in the views, with names of
their own (drf-spectacular names schema components after the class)."""

from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api import (
    CanCurate,
    JobOutputSerializer,
    NewestFirstPagination,
    filtered_by_ids,
    paginated,
)
from core.models import JobStatus
from curation.models import Dataset

from ..models import AgreementReport, ReviewCampaign
from .selectors import agreement_report_get, agreement_report_staleness
from .services import agreement_report_create


class AgreementReportOutputSerializer(JobOutputSerializer):
    campaign = serializers.IntegerField(source="campaign_id", allow_null=True)
    dataset = serializers.IntegerField(source="dataset_id", allow_null=True)
    scope = serializers.JSONField()
    judgment_cutoff = serializers.IntegerField(
        help_text="Highest judgment id the report read; newer judgments make it stale."
    )
    csv_url = serializers.SerializerMethodField()
    json_url = serializers.SerializerMethodField()

    def get_csv_url(self, report) -> str:
        return reverse("review:agreement_csv", args=[report.pk])

    def get_json_url(self, report) -> str:
        return reverse("review:agreement_json", args=[report.pk])


class AgreementReportDetailOutputSerializer(AgreementReportOutputSerializer):
    stale = serializers.SerializerMethodField(
        help_text="A judgment in scope is newer than the report, or a submission was undone "
        "since; null until the report succeeded."
    )
    result = serializers.JSONField(
        help_text="Every figure of the report (pairs, humans, machines, slices, paper)."
    )

    def get_stale(self, report) -> bool | None:
        if report.status != JobStatus.SUCCEEDED:
            return None
        return agreement_report_staleness(report=report).stale


class AgreementReportListCreateApi(APIView):
    """Agreement reports, newest first; POST asks for the report of a scope: a still-valid
    one is returned as it is (200), else a job starts (202)."""

    # Viewers read; creating a report needs a curator or admin.
    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    class AgreementReportInputSerializer(serializers.Serializer):
        campaign = serializers.PrimaryKeyRelatedField(
            queryset=ReviewCampaign.objects.select_related("dataset"),
            required=False,
            allow_null=True,
        )
        dataset = serializers.PrimaryKeyRelatedField(
            queryset=Dataset.objects.all(), required=False, allow_null=True
        )
        partly_relevant_is_false_negative = serializers.BooleanField(required=False, default=False)
        force = serializers.BooleanField(
            required=False, default=False, help_text="Compute again even if nothing changed."
        )

    @extend_schema(
        parameters=[
            OpenApiParameter("campaign", int, description="Only this campaign's reports."),
            OpenApiParameter("dataset", int, description="Only this dataset's reports."),
        ],
        responses=AgreementReportOutputSerializer(many=True),
        description="Agreement reports, newest first, without their figures.",
    )
    def get(self, request):
        reports = filtered_by_ids(
            request, AgreementReport.objects.defer("result"), "campaign", "dataset"
        )
        return paginated(self, reports, AgreementReportOutputSerializer)

    @extend_schema(
        request=AgreementReportInputSerializer,
        responses={
            200: AgreementReportDetailOutputSerializer,
            202: AgreementReportOutputSerializer,
        },
    )
    def post(self, request):
        serializer = self.AgreementReportInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        report, created = agreement_report_create(**serializer.validated_data, user=request.user)
        if created:
            return Response(
                AgreementReportOutputSerializer(report).data, status=status.HTTP_202_ACCEPTED
            )
        report = agreement_report_get(report_id=report.pk)
        return Response(AgreementReportDetailOutputSerializer(report).data)


class AgreementReportDetailApi(APIView):
    """One agreement report: its job status and, once it succeeded, every figure."""

    permission_classes = [IsAuthenticated, CanCurate]

    @extend_schema(responses=AgreementReportDetailOutputSerializer)
    def get(self, request, pk: int):
        try:
            report = agreement_report_get(report_id=pk)
        except AgreementReport.DoesNotExist:
            raise NotFound("no such agreement report") from None
        return Response(AgreementReportDetailOutputSerializer(report).data)
