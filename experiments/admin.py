from django.contrib import admin

from . import models


@admin.register(models.PolicyComparison)
class PolicyComparisonAdmin(admin.ModelAdmin):
    """Comparisons are created by their service (validation, enqueueing); the admin reads
    them. The runs they started have their own admin pages."""

    list_display = ["id", "dataset", "name", "status", "created_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["name", "dataset__name"]
    raw_id_fields = ["dataset", "created_by"]
    readonly_fields = [f.name for f in models.PolicyComparison._meta.fields]

    def has_add_permission(self, request):
        return False
