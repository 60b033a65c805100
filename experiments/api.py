"""REST API for policy comparisons: the same service as the "Compare policies" page."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from core.api import CanCurate, JobOutputSerializer, NewestFirstPagination, SieveApi, paginated
from curation.models import Dataset
from evaluation.models import EvaluationMode
from training.api import TrainConfigSerializer

from .models import PolicyComparison
from .services import policy_comparison_create


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
        train_config = TrainConfigSerializer(required=False, default=dict)
        eval_tasks = serializers.ListField(child=serializers.CharField())
        eval_mode = serializers.ChoiceField(choices=EvaluationMode.values, default="full")
        eval_config = serializers.JSONField(required=False, default=dict)

    @extend_schema(responses=PolicyComparisonOutputSerializer(many=True))
    def get(self, request):
        return paginated(self, PolicyComparison.objects.all(), PolicyComparisonOutputSerializer)

    @extend_schema(
        request=PolicyComparisonInputSerializer,
        responses={202: PolicyComparisonOutputSerializer},
    )
    def post(self, request):
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
