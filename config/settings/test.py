"""Test settings: real PostgreSQL and Redis when they answer, the embedded default otherwise.

``make test`` and ``.ci/run`` may set DATABASE_URL / CELERY_BROKER_URL explicitly; without
them we probe 127.0.0.1 so a developer's plain ``pytest`` also uses the real services.

``SIEVE_TEST_EMBEDDED=1`` (``make test-embedded``) forces what ``make run`` uses, SQLite and the
filesystem broker, even where PostgreSQL and Redis answer or are named in the environment.

A SQLite test database is a file under SIEVE_VAR_DIR, not pytest-django's in-memory default,
so that the Celery worker processes some tests start can open it too.
"""

import os
import socket
from pathlib import Path


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


_ROOT_VAR = Path(__file__).resolve().parent.parent.parent / "var"
EMBEDDED = os.environ.get("SIEVE_TEST_EMBEDDED", "") not in ("", "0", "false", "no")
if EMBEDDED:
    # Before base reads the environment: these win over .ci/run's exports and over .env.
    _var = Path(os.environ.setdefault("SIEVE_VAR_DIR", str(_ROOT_VAR / "test-embedded")))
    os.environ["DATABASE_URL"] = f"sqlite:///{_var / 'sieve.sqlite3'}"
    os.environ["CELERY_BROKER_URL"] = "filesystem://localhost/"
else:
    if "DATABASE_URL" not in os.environ and _listening(5432):
        os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/sieve"
    if "CELERY_BROKER_URL" not in os.environ and _listening(6379):
        os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/14"
    os.environ.setdefault("SIEVE_VAR_DIR", str(_ROOT_VAR / "test"))

# Tests never reach the Hugging Face hub (CI has no route to it): models load from local
# folders, and a registry task fails at once with its name instead of after network timeouts.
# Set before huggingface_hub / mteb are imported (they read it once, at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .base import *  # noqa: E402,F403
from .base import (  # noqa: E402
    CELERY_BROKER_URL,
    DATABASES,
    SECRET_KEY,
    VAR_DIR,
    embedded_files_create,
    secret_key_file_read,
)

embedded_files_create(var_dir=VAR_DIR, broker_url=CELERY_BROKER_URL)
# The same file local reads, so worker processes started by tests share this key.
SECRET_KEY = SECRET_KEY or secret_key_file_read(VAR_DIR / "secret_key")
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test_sieve.sqlite3")}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
