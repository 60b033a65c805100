"""Test settings: real PostgreSQL and Redis when they answer, the embedded default otherwise.

``make test`` and ``.ci/run`` may set DATABASE_URL / CELERY_BROKER_URL explicitly; without
them we probe 127.0.0.1 so a developer's plain ``pytest`` also uses the real services.
"""

import os
import socket


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and _listening(5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/sieve"
if "CELERY_BROKER_URL" not in os.environ and _listening(6379):
    os.environ["CELERY_BROKER_URL"] = "redis://127.0.0.1:6379/14"
os.environ.setdefault("SIEVE_VAR_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "var", "test"))

# Tests never reach the Hugging Face hub (CI has no route to it): models load from local
# folders, and a registry task fails at once with its name instead of after network timeouts.
# Set before huggingface_hub / mteb are imported (they read it once, at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from .base import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DEBUG = False
