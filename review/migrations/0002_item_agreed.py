from django.db import migrations, models


# Finished items of existing campaigns: the same rule as review.services.queue.answers_agree,
# set-based (portable SQL: CASE sums instead of FILTER).
BACKFILL = """
UPDATE review_reviewitem SET agreed = (
  SELECT CASE WHEN (
      SUM(CASE WHEN j.verdict = 'relevant' THEN 1 ELSE 0 END) = COUNT(*)
      OR SUM(CASE WHEN j.verdict = 'not_relevant' THEN 1 ELSE 0 END) = COUNT(*)
    ) AND (
      SUM(CASE WHEN j.tag = 'query_edit' THEN 1 ELSE 0 END) = 0
      OR (SUM(CASE WHEN j.tag = 'query_edit' THEN 1 ELSE 0 END) = COUNT(*)
          AND MIN(j.rationale) = MAX(j.rationale))
    ) THEN TRUE ELSE FALSE END
  FROM review_reviewsubmission s JOIN curation_judgment j ON j.id = s.judgment_id
  WHERE s.item_id = review_reviewitem.id AND s.undone_at IS NULL
)
WHERE done
"""


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0005_drop_redundant_fk_indexes"),
        ("review", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="reviewitem",
            name="agreed",
            field=models.BooleanField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name="reviewitem",
            index=models.Index(fields=["campaign", "agreed", "id"], name="review_item_agreed_idx"),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop),
    ]
