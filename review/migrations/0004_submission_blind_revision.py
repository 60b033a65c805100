"""Blind answers and post-reveal revisions (review_queue.md, "Blind campaigns").

Existing answers of blind campaigns are classified the way the queue now classifies new ones:
a person's first answer to an item is their blind answer (the page only ever showed the
judges' verdicts after an answer, and undo was only offered beside them), and every later
answer of theirs to that item is a post-reveal revision of it. Finished items where an
active revision changed the blind verdict go to adjudication (``agreed`` false), as new ones
do. Portable SQL (PostgreSQL and SQLite), set-based."""

from django.db import migrations, models

MARK_BLIND = """
UPDATE review_reviewsubmission SET blind = TRUE
WHERE id IN (
  SELECT MIN(s.id)
  FROM review_reviewsubmission s
  JOIN review_reviewitem i ON i.id = s.item_id
  JOIN review_reviewcampaign c ON c.id = i.campaign_id
  WHERE c.blind
  GROUP BY s.item_id, s.user_id
)
"""

LINK_REVISIONS = """
UPDATE review_reviewsubmission SET revises_id = (
  SELECT b.id FROM review_reviewsubmission b
  WHERE b.item_id = review_reviewsubmission.item_id
    AND b.user_id = review_reviewsubmission.user_id
    AND b.blind
)
WHERE NOT blind AND EXISTS (
  SELECT 1 FROM review_reviewsubmission b
  WHERE b.item_id = review_reviewsubmission.item_id
    AND b.user_id = review_reviewsubmission.user_id
    AND b.blind
)
"""

# The rule of answers_agree (review.services.queue): an active revision that changed the blind
# answer keeps the item out of consensus.
REVISED_ITEMS_TO_ADJUDICATION = """
UPDATE review_reviewitem SET agreed = FALSE
WHERE done AND EXISTS (
  SELECT 1
  FROM review_reviewsubmission s
  JOIN curation_judgment j ON j.id = s.judgment_id
  JOIN review_reviewsubmission b ON b.id = s.revises_id
  JOIN curation_judgment bj ON bj.id = b.judgment_id
  WHERE s.item_id = review_reviewitem.id AND s.undone_at IS NULL
    AND (j.verdict <> bj.verdict OR j.tag <> bj.tag OR j.rationale <> bj.rationale)
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("review", "0003_job_framework"),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewsubmission",
            name="blind",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddField(
            model_name="reviewsubmission",
            name="revises",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=models.deletion.CASCADE,
                related_name="revisions",
                to="review.reviewsubmission",
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewsubmission",
            constraint=models.UniqueConstraint(
                condition=models.Q(("blind", True)),
                fields=("item", "user"),
                name="review_submission_one_blind",
            ),
        ),
        migrations.AddConstraint(
            model_name="reviewsubmission",
            constraint=models.CheckConstraint(
                condition=models.Q(("blind", False), ("revises__isnull", True), _connector="OR"),
                name="review_submission_revision_not_blind",
            ),
        ),
        # After the constraints: on PostgreSQL, setting the revises foreign key queues
        # deferred checks, and no ALTER TABLE may follow them in the same transaction.
        migrations.RunSQL(MARK_BLIND, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(LINK_REVISIONS, reverse_sql=migrations.RunSQL.noop),
        migrations.RunSQL(REVISED_ITEMS_TO_ADJUDICATION, reverse_sql=migrations.RunSQL.noop),
    ]
