"""REST API of review campaigns: the list, one campaign with its counts, and its human
answers for export (what Label Studio or Argilla users pull to train on or audit).

Answers are for admins, curators and viewers: annotators judge blind and independently, so
they cannot read each other's answers here. The answers list pages by submission id with a
cursor (keyset), so it walks a campaign of any size in constant time per page."""

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from core.api import NewestFirstPagination, OldestFirstPagination, SieveApi, paginated

from . import selectors as reads
from .models import ReviewCampaign, ReviewSubmission
from .services.queue_rules import QUERY_EDIT_TAG


class CampaignOutputSerializer(serializers.ModelSerializer):
    dataset = serializers.IntegerField(source="dataset_id")
    cascade_run = serializers.IntegerField(source="cascade_run_id", allow_null=True)

    class Meta:
        model = ReviewCampaign
        fields = ["id", "name", "dataset", "cascade_run", "strata", "seed", "overlap", "blind",
                  "guidelines", "status", "item_count", "done_count", "created_at"]  # fmt: skip


class CampaignListApi(SieveApi):
    """Review campaigns, newest first."""

    pagination_class = NewestFirstPagination

    @extend_schema(responses=CampaignOutputSerializer(many=True))
    def get(self, request):
        return paginated(self, ReviewCampaign.objects.all(), CampaignOutputSerializer)


class CampaignDetailApi(SieveApi):
    """One campaign: its settings, counts, and items per stratum (asked for, sampled, done)."""

    class CampaignDetailSerializer(CampaignOutputSerializer):
        strata_counts = serializers.SerializerMethodField()

        class Meta(CampaignOutputSerializer.Meta):
            fields = [*CampaignOutputSerializer.Meta.fields, "strata_counts"]

        def get_strata_counts(self, campaign) -> list[dict]:
            return [
                {
                    "stratum": row.stratum,
                    "requested": row.requested,
                    "items": row.items,
                    "done": row.done,
                }  # fmt: skip
                for row in reads.campaign_strata_counts(campaign=campaign)
            ]

    @extend_schema(responses=CampaignDetailSerializer)
    def get(self, request, pk: int):
        campaign = get_object_or_404(ReviewCampaign, pk=pk)
        return Response(self.CampaignDetailSerializer(campaign).data)


class AnswerOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    item = serializers.IntegerField(source="item_id")
    stratum = serializers.CharField(source="item.stratum")
    candidate = serializers.IntegerField(source="item.candidate_id")
    query_id = serializers.CharField(source="item.candidate.query.query_id")
    doc_id = serializers.CharField(source="item.candidate.passage.doc_id")
    annotator = serializers.CharField(source="user.username")
    verdict = serializers.CharField(source="judgment.verdict")
    note = serializers.CharField(source="judgment.note")
    edited_query = serializers.SerializerMethodField()
    judgment = serializers.IntegerField(source="judgment_id")
    created_at = serializers.DateTimeField()
    blind = serializers.BooleanField(
        help_text="Given before the annotator saw the LLM verdicts (a blind campaign's first "
        "answer): their rating in the agreement report."
    )
    revises = serializers.IntegerField(
        source="revises_id",
        allow_null=True,
        help_text="A revision after seeing the LLM verdicts: the id of the blind answer it "
        "revises (that one still counts for agreement).",
    )
    blind_verdict = serializers.SerializerMethodField(
        help_text="For a revision: the verdict of the blind answer; empty otherwise."
    )

    def get_edited_query(self, submission) -> str:
        judgment = submission.judgment
        return judgment.rationale if judgment.tag == QUERY_EDIT_TAG else ""

    def get_blind_verdict(self, submission) -> str:
        return submission.revises.judgment.verdict if submission.revises_id else ""


class CampaignAnswersApi(SieveApi):
    """The campaign's human answers (undone ones left out), oldest first. In a blind
    campaign an answer revised after the reveal says so (``revises``, ``blind_verdict``)."""

    pagination_class = OldestFirstPagination

    @extend_schema(responses=AnswerOutputSerializer(many=True))
    def get(self, request, pk: int):
        campaign = get_object_or_404(ReviewCampaign, pk=pk)
        answers = ReviewSubmission.objects.filter(
            item__campaign=campaign, undone_at__isnull=True
        ).select_related(
            "item",
            "user",
            "judgment",
            "item__candidate__query",
            "item__candidate__passage",
            "revises__judgment",
        )
        return paginated(self, answers, AnswerOutputSerializer)
