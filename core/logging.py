"""Logging filters named in the settings' LOGGING."""

import logging


class ForbiddenWithoutTraceback(logging.Filter):
    """django.request logs every 403 with the PermissionDenied traceback: pages of noise in
    the terminal for what is a normal answer to a user without the role. Keep the one-line
    warning ("Forbidden (Permission denied): /path"), drop the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "status_code", None) == 403:
            record.exc_info = None
            record.exc_text = None
        return True
