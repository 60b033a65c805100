from django.contrib import admin

from . import models


class EvalResultInline(admin.TabularInline):
    model = models.EvalResult
    fields = ["task", "split", "main_score", "ndcg_at_10", "recall_at_100", "mrr_at_10",
              "corpus_size", "query_count", "evaluation_seconds"]  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(models.EvaluationRun)
class EvaluationRunAdmin(admin.ModelAdmin):
    """Runs are created by the evaluation service (validation, enqueueing); the admin reads
    them and may delete them."""

    list_display = ["id", "model_label", "mode", "status", "progress", "created_at", "finished_at"]
    list_filter = ["status", "mode"]
    search_fields = ["model_label", "model_key", "model_ref"]
    raw_id_fields = ["training_run", "created_by"]
    inlines = [EvalResultInline]
    readonly_fields = [f.name for f in models.EvaluationRun._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(models.EvalResult)
class EvalResultAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "task", "split", "main_score", "corpus_size", "created_at"]
    list_filter = ["task", "split"]
    raw_id_fields = ["run"]
    readonly_fields = [f.name for f in models.EvalResult._meta.fields]

    def has_add_permission(self, request):
        return False
