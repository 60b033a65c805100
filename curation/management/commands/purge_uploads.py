"""manage.py purge_uploads

Deletes the uploaded import files no import needs any more: a succeeded import's, a failed or
cancelled import's once SIEVE_UPLOAD_KEEP_FAILED_DAYS passed (until then Retry needs it), and
a file no import names. Every upload does the same first; run this from cron (daily) on a
server that may go days without one. Files outside SIEVE_UPLOAD_DIR are never touched.
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from curation.datasets.upload_retention import uploads_purge


class Command(BaseCommand):
    help = (
        "Delete uploaded import files no import needs any more (a failed import's after "
        "SIEVE_UPLOAD_KEEP_FAILED_DAYS days)."
    )

    def handle(self, *args, **options):
        result = uploads_purge()
        self.stdout.write(
            f"deleted {result.deleted:,} file{'s' if result.deleted != 1 else ''} "
            f"({result.freed_bytes / 1e6:,.1f} MB) from {settings.SIEVE_UPLOAD_DIR}; "
            f"kept {result.kept:,} (imports queued, running, or failed less than "
            f"{settings.SIEVE_UPLOAD_KEEP_FAILED_DAYS} days ago)"
        )
