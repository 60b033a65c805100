"""CascadeRun.max_positives: how many of a query's positives the judge prompt shows (null: all).

Runs recorded before this migration were built with at most 5 positives per prompt (the old
fixed cap), so they keep 5: a run that resumes after the upgrade sends the same prompts it
started with, and its page tells the truth about them."""

from django.db import migrations, models

OLD_FIXED_CAP = 5


def existing_runs_keep_the_old_cap(apps, schema_editor):
    apps.get_model("curation", "CascadeRun").objects.update(max_positives=OLD_FIXED_CAP)


class Migration(migrations.Migration):
    dependencies = [
        ("curation", "0008_approvals"),
    ]

    operations = [
        migrations.AddField(
            model_name="cascaderun",
            name="max_positives",
            field=models.IntegerField(blank=True, null=True),
        ),
        migrations.AddConstraint(
            model_name="cascaderun",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("max_positives__isnull", True), ("max_positives__gte", 1), _connector="OR"
                ),
                name="cascade_run_max_positives_at_least_one",
            ),
        ),
        migrations.RunPython(existing_runs_keep_the_old_cap, migrations.RunPython.noop),
    ]
