"""The embedded default that ``make run`` uses: one machine, SQLite in WAL mode and Celery's
filesystem broker under ``var/`` (base's defaults), web and workers started by ``runall``.

This is the one settings module that writes at import, and only what a developer's first
command needs: VAR_DIR, the broker's folders and, without ``DJANGO_SECRET_KEY``, a key file.
They are made here rather than in ``setup_sieve``/``runall`` because any process may be the
first to start: ``manage.py migrate``, ``celery -A config worker``, a bench script or a test
that starts ``runall`` without ``setup_sieve``. Each of them needs the key and the folders, and
creating them is idempotent and cheap.
"""

from .base import *  # noqa: F403
from .base import (
    CELERY_BROKER_URL,
    SECRET_KEY,
    VAR_DIR,
    embedded_files_create,
    secret_key_file_read,
)

embedded_files_create(var_dir=VAR_DIR, broker_url=CELERY_BROKER_URL)
if not SECRET_KEY:
    SECRET_KEY = secret_key_file_read(VAR_DIR / "secret_key")
