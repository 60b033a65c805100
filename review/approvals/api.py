"""REST API of approvals: list and create, get, cancel, revoke. Curators and admins write,
viewers read, annotators nothing (``CanCurate`` lets viewers through on safe methods only).
Same services as the pages."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
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
from core.errors import ApplicationError
from curation.cascade.approvals import approval_revoke
from curation.models import Approval, CascadeRun

from ..models import AgreementReport
from .gate import DEFAULT_KAPPA_MIN, DEFAULT_PRECISION_LOW_MIN, GateSettings
from .services import approval_submit


class ApprovalOutputSerializer(JobOutputSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    cascade_run = serializers.IntegerField(source="cascade_run_id")
    stage = serializers.IntegerField(allow_null=True, help_text="null: the final verdicts")
    agreement_report = serializers.IntegerField(source="agreement_report_id", allow_null=True)
    gate_passed = serializers.BooleanField()
    gate = serializers.JSONField(help_text="Thresholds, checks and the figures they read.")
    reason = serializers.CharField(help_text="Why approved although the gate was not met.")
    decision_count = serializers.IntegerField()
    false_negative_count = serializers.IntegerField()
    in_force = serializers.SerializerMethodField(
        help_text="Applied in full and not revoked: new snapshots use it."
    )
    revoked_at = serializers.DateTimeField(allow_null=True)
    revoke_reason = serializers.CharField()

    def get_in_force(self, approval) -> bool:
        return approval.status == "succeeded" and approval.revoked_at is None


ApprovalDetailApi, ApprovalCancelApi = job_api_views(
    queryset=Approval.objects.all(),
    serializer=ApprovalOutputSerializer,
    noun="approval",
    stops="after the chunk of queries it is writing",
)


class ApprovalListCreateApi(SieveApi):
    """Approvals, newest first; POST approves a cascade run's verdicts for its dataset (a
    job applies them: 202). A gate that is not met is refused (400, field ``reason``) unless
    a reason is given."""

    permission_classes = [IsAuthenticated, CanCurate]
    pagination_class = NewestFirstPagination

    class ApprovalInputSerializer(serializers.Serializer):
        cascade_run = serializers.PrimaryKeyRelatedField(
            queryset=CascadeRun.objects.select_related("dataset")
        )
        stage = serializers.IntegerField(required=False, allow_null=True, min_value=1)
        report = serializers.PrimaryKeyRelatedField(
            queryset=AgreementReport.objects.select_related("campaign"),
            required=False,
            allow_null=True,
        )
        kappa_min = serializers.FloatField(
            required=False, default=DEFAULT_KAPPA_MIN, min_value=-1, max_value=1
        )
        precision_low_min = serializers.FloatField(
            required=False, default=DEFAULT_PRECISION_LOW_MIN, min_value=0, max_value=1
        )
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(
        parameters=[OpenApiParameter("dataset", int, description="Only this dataset's.")],
        responses=ApprovalOutputSerializer(many=True),
    )
    def get(self, request):
        approvals = filtered_by_ids(request, Approval.objects.all(), "dataset")
        return paginated(self, approvals, ApprovalOutputSerializer)

    @extend_schema(request=ApprovalInputSerializer, responses={202: ApprovalOutputSerializer})
    def post(self, request):
        serializer = self.ApprovalInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        approval = approval_submit(
            cascade_run=data["cascade_run"],
            stage=data.get("stage"),
            report=data.get("report"),
            settings=GateSettings(
                kappa_min=data["kappa_min"], precision_low_min=data["precision_low_min"]
            ),
            reason=data["reason"],
            user=request.user,
        )
        return Response(ApprovalOutputSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


class ApprovalRevokeApi(SieveApi):
    """Take an approval out of force: later snapshots leave its verdicts out."""

    permission_classes = [IsAuthenticated, CanCurate]

    class ApprovalRevokeInputSerializer(serializers.Serializer):
        reason = serializers.CharField(required=False, allow_blank=True, default="")

    @extend_schema(request=ApprovalRevokeInputSerializer, responses=ApprovalOutputSerializer)
    def post(self, request, pk: int):
        approval = get_object_or_404(Approval, pk=pk)
        serializer = self.ApprovalRevokeInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            approval = approval_revoke(
                approval=approval, user=request.user, reason=serializer.validated_data["reason"]
            )
        except ApplicationError as error:
            return Response({"detail": error.message}, status=status.HTTP_409_CONFLICT)
        return Response(ApprovalOutputSerializer(approval).data)
