from django.contrib import admin

from . import models


@admin.register(models.ReviewCampaign)
class ReviewCampaignAdmin(admin.ModelAdmin):
    list_display = ["name", "dataset", "overlap", "blind", "status", "item_count", "done_count"]
    list_filter = ["status", "blind"]
    filter_horizontal = ["annotators"]


@admin.register(models.ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["id", "campaign", "candidate", "stratum", "judgment_count", "done"]
    list_filter = ["stratum", "done"]
    raw_id_fields = ["campaign", "candidate"]
    show_full_result_count = False


@admin.register(models.ReviewSubmission)
class ReviewSubmissionAdmin(admin.ModelAdmin):
    list_display = ["id", "item", "user", "created_at", "undone_at", "blind", "revises"]
    # A raw id for revises: a select would list every submission.
    raw_id_fields = ["item", "user", "judgment", "revises"]
    show_full_result_count = False


@admin.register(models.AgreementReport)
class AgreementReportAdmin(admin.ModelAdmin):
    list_display = ["id", "dataset", "campaign", "status", "judgment_cutoff", "created_at"]
    list_filter = ["status"]
