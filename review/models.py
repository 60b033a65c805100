"""Human review: campaigns over a stratified sample of candidates, the breadth-first queue
with short-lived locks, and the agreement report job.

A human verdict is a ``curation.Judgment`` (append-only, ``rater = user:<username>``); the
``ReviewSubmission`` beside it is the workflow record that makes a double submit idempotent
and lets the annotator undo: an undone submission no longer counts, the judgment stays in
history. In a blind campaign the annotator's first answer (given before the LLM verdicts
were revealed) stays their rating for agreement; an answer after an undo is a revision of it
(``review/services/blind.py``).
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from core.models import Job
from curation.models import Candidate, CascadeRun, Dataset, Judgment


class Stratum(models.TextChoices):
    STAGE2_FLAGGED = "stage2_flagged", "flagged by stage 2"
    STAGE1_ONLY = "stage1_only", "flagged by stage 1 only"
    UNFLAGGED = "unflagged", "unflagged hard negatives"
    SYNTHETIC = "synthetic", "synthetic triplets"


class CampaignStatus(models.TextChoices):
    ACTIVE = "active"
    CLOSED = "closed"


class ReviewCampaign(models.Model):
    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="campaigns")
    # Where the stage-1 / stage-2 strata come from; null: the latest cascade of the dataset.
    cascade_run = models.ForeignKey(
        CascadeRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # {stratum: sample size}, sampled with ``seed``.
    strata = models.JSONField(default=dict)
    seed = models.IntegerField(default=0)
    overlap = models.PositiveSmallIntegerField(default=1, help_text="annotators per item (k)")
    blind = models.BooleanField(default=True, help_text="hide LLM verdicts until submitted")
    # What the curators tell the annotators (plain text, shown escaped on the review page).
    guidelines = models.TextField(blank=True, default="", db_default="")
    annotators = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="campaigns")
    status = models.CharField(
        max_length=16, choices=CampaignStatus.choices, default=CampaignStatus.ACTIVE
    )
    item_count = models.IntegerField(default=0)
    done_count = models.IntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(condition=Q(overlap__gte=1), name="campaign_overlap_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class ReviewItem(models.Model):
    campaign = models.ForeignKey(ReviewCampaign, on_delete=models.CASCADE, related_name="items")
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="+")
    stratum = models.CharField(max_length=32, choices=Stratum.choices)
    # Seeded shuffle position: items are served in this order within equal judgment counts.
    position = models.IntegerField()
    # Active (not undone) human submissions; the queue serves the least-judged items first.
    judgment_count = models.PositiveSmallIntegerField(default=0)
    done = models.BooleanField(default=False)
    # Set when the item is done: whether its k answers agree (review.services.queue.
    # answers_agree); None while it is open. Splits finished items into "decide in bulk" and
    # "adjudicate" on an index instead of re-tallying every finished item per page view.
    agreed = models.BooleanField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "candidate"], name="review_item_unique"),
        ]
        indexes = [
            # The next-item query: open items of a campaign, least judged first, then position.
            models.Index(
                fields=["campaign", "done", "judgment_count", "position"],
                name="review_item_queue_idx",
            ),
            # The adjudication queue and the bulk decisions: keyset pages by id.
            models.Index(fields=["campaign", "agreed", "id"], name="review_item_agreed_idx"),
        ]

    def __str__(self) -> str:
        return f"review item #{self.pk} of campaign #{self.campaign_id} ({self.stratum})"


class ReviewLock(models.Model):
    """A short-lived claim of an item by an annotator, so two people never hold the same item
    at once unless the overlap asks for it. Expired locks are simply ignored."""

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="locks")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["item", "user"], name="review_lock_unique"),
        ]
        indexes = [models.Index(fields=["item", "expires_at"], name="review_lock_item_idx")]

    def __str__(self) -> str:
        return f"hold on review item #{self.item_id} by user #{self.user_id}"


class ReviewSubmission(models.Model):
    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="submissions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    judgment = models.OneToOneField(Judgment, on_delete=models.CASCADE, related_name="submission")
    # Sent by the page with each verdict: the same token twice is the same submission.
    client_token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    undone_at = models.DateTimeField(null=True, blank=True)
    # Given before the person saw any judge's verdict on the item: their first answer to it in
    # a blind campaign. It is their rating in the agreement report even once undone or revised
    # (review_queue.md, "Blind campaigns"). Set when written: toggling the campaign's ``blind``
    # later changes nothing about answers already given.
    blind = models.BooleanField(default=False, db_default=False)
    # A post-reveal revision: the person undid their blind answer (after the page had shown
    # the judges' verdicts) and answered again. Points to that blind answer, never to an
    # intermediate revision. Null on every other answer.
    revises = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="revisions"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["item", "user"],
                condition=Q(undone_at__isnull=True),
                name="review_submission_one_active",
            ),
            # One blind answer per person and item: what the agreement report counts.
            models.UniqueConstraint(
                fields=["item", "user"],
                condition=Q(blind=True),
                name="review_submission_one_blind",
            ),
            models.CheckConstraint(
                condition=Q(blind=False) | Q(revises__isnull=True),
                name="review_submission_revision_not_blind",
            ),
        ]
        indexes = [models.Index(fields=["user", "-created_at"], name="review_submission_user_idx")]

    def __str__(self) -> str:
        return f"answer #{self.pk} to review item #{self.item_id} by user #{self.user_id}"


class AgreementReport(Job):
    """A cached agreement report: computed by a job, never inside a request. ``scope`` says
    what it covers (dataset, campaign, stratum, time range); ``result`` holds every figure
    the page, the CSV, the JSON and the API show."""

    task_name = "review.tasks.agreement_report_run"

    dataset = models.ForeignKey(
        Dataset, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    campaign = models.ForeignKey(
        ReviewCampaign, null=True, blank=True, on_delete=models.CASCADE, related_name="reports"
    )
    scope = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    # Highest judgment id included: a newer judgment makes the cached report stale.
    judgment_cutoff = models.BigIntegerField(default=0)
