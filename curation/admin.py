from django.contrib import admin

from . import models


@admin.register(models.Corpus)
class CorpusAdmin(admin.ModelAdmin):
    list_display = ["name", "passage_count", "created_at"]
    search_fields = ["name"]


@admin.register(models.Passage)
class PassageAdmin(admin.ModelAdmin):
    list_display = ["doc_id", "corpus", "title"]
    list_filter = ["corpus"]
    search_fields = ["doc_id"]
    raw_id_fields = ["corpus"]
    show_full_result_count = False


@admin.register(models.Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ["name", "corpus", "format", "query_count", "positive_count", "negative_count"]
    list_filter = ["format"]
    search_fields = ["name"]


@admin.register(models.Query)
class QueryAdmin(admin.ModelAdmin):
    list_display = ["query_id", "dataset", "text"]
    list_filter = ["dataset"]
    search_fields = ["query_id"]
    raw_id_fields = ["dataset"]
    show_full_result_count = False


@admin.register(models.Candidate)
class CandidateAdmin(admin.ModelAdmin):
    list_display = ["id", "query", "passage", "role", "origin", "rank", "teacher_score"]
    list_filter = ["role", "origin"]
    raw_id_fields = ["query", "passage"]
    show_full_result_count = False


class AppendOnlyAdmin(admin.ModelAdmin):
    """Judgments and decisions are history: they can be read and added, never edited."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(models.Judgment)
class JudgmentAdmin(AppendOnlyAdmin):
    list_display = ["id", "candidate", "rater", "verdict", "tag", "created_at"]
    list_filter = ["rater_kind", "verdict"]
    search_fields = ["rater"]
    raw_id_fields = ["candidate", "user"]
    show_full_result_count = False


@admin.register(models.Decision)
class DecisionAdmin(AppendOnlyAdmin):
    list_display = ["id", "candidate", "label", "source", "created_by", "created_at"]
    list_filter = ["label", "source"]
    raw_id_fields = ["candidate", "created_by"]
    show_full_result_count = False


@admin.register(models.Snapshot)
class SnapshotAdmin(AppendOnlyAdmin):
    list_display = ["id", "dataset", "policy", "format", "sha256", "created_at"]
    list_filter = ["policy", "format"]


@admin.register(models.ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset_name", "format", "status", "progress", "created_at"]
    list_filter = ["status", "format"]
    readonly_fields = ["stats", "error", "error_detail"]


@admin.register(models.ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "policy", "format", "status", "progress", "created_at"]
    list_filter = ["status", "policy", "format"]


@admin.register(models.MiningRun)
class MiningRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "model_name", "status", "progress", "created_at"]
    list_filter = ["status"]


@admin.register(models.CascadeRun)
class CascadeRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "mode", "status", "progress", "cost_usd", "created_at"]
    list_filter = ["status", "mode"]


@admin.register(models.CascadeItem)
class CascadeItemAdmin(admin.ModelAdmin):
    list_display = ["id", "run", "stage", "query", "status", "flagged"]
    list_filter = ["stage", "status", "flagged"]
    raw_id_fields = ["run", "query", "call"]
    show_full_result_count = False


@admin.register(models.LLMCall)
class LLMCallAdmin(AppendOnlyAdmin):
    list_display = [
        "id", "model", "stage", "input_tokens", "output_tokens", "cost_usd", "created_at",
    ]  # fmt: skip
    list_filter = ["model", "batch"]
    raw_id_fields = ["cascade_run"]
    show_full_result_count = False


@admin.register(models.SynthesisRun)
class SynthesisRunAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "negative_mode", "status", "progress", "created_at"]
    list_filter = ["status"]
