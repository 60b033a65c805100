"""Settings shared by every environment; everything that differs comes from the environment.

Pick one of the modules built on this one (``DJANGO_SETTINGS_MODULE``):

* ``config.settings.local`` — the embedded default of ``make run``: SQLite in WAL mode +
  Celery's filesystem transport under ``var/``, a secret key generated once into ``var/``.
* ``config.settings.production`` — ``DATABASE_URL`` (PostgreSQL) and ``CELERY_BROKER_URL``
  (Redis or RabbitMQ), a secret key from the environment, HTTPS-only cookies and HSTS.
* ``config.settings.test`` — the test suite.

Importing this module writes nothing: no folder, no key file. Only ``local`` and ``test``
create what they need (``embedded_files_create``), so a production process never writes into
its checkout just by starting.
"""

import os
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env.str("SIEVE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# Empty here: local falls back to a key file in VAR_DIR, production refuses to start.
# Read as given, not through django-environ: it takes a value starting with "$" for the name
# of another variable, and one in fifty of Django's generated keys starts with "$".
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

AUTHENTICATION_BACKENDS = ["core.admin_site.RoleBackend"]

INSTALLED_APPS = [
    # Django's admin, opened to the ``admin`` role (core/admin_site.py).
    "core.admin_apps.SieveAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_htmx",
    "django_celery_results",
    "core",
    "curation",
    "review",
    "training",
    "evaluation",
    "experiments",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs login; the API opts out and relies on DRF's own authentication.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.roles",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'sieve.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while a worker writes; the busy timeout waits for the
    # one writer instead of failing with "database is locked".
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
    DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = Path(env.str("SIEVE_MEDIA_ROOT", default=str(VAR_DIR / "media")))
MEDIA_URL = "media/"
# Uploads larger than this stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
# Sessions are read from the cache when every web process shares it (Redis or memcached through
# CACHE_URL): a request then reads no session row (issue 13), and every write and a logout
# still go to the database and the cache alike, so a session is revoked at once everywhere.
# A per-process cache (the default locmem) would keep a logged-out session alive in the other
# processes, so there sessions are read from the database.
SHARED_CACHE_BACKENDS = (
    "django.core.cache.backends.redis.",
    "django.core.cache.backends.memcached.",
    "django_redis.",
)
if CACHES["default"]["BACKEND"].startswith(SHARED_CACHE_BACKENDS):
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

# --- Celery -----------------------------------------------------------------------------
# Default: kombu's filesystem transport (no services). Production: redis:// or amqp://.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")
BROKER_DIR = VAR_DIR / "broker"
BROKER_FOLDERS = ("queue", "processed", "control")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The folders must exist before a process sends or consumes: embedded_files_create.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(BROKER_DIR / "queue"),
        "data_folder_out": str(BROKER_DIR / "queue"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "control_folder": str(BROKER_DIR / "control"),
        "store_processed": False,
    }
else:
    # acks_late redelivers an unacked task after the visibility timeout: keep it above the
    # longest job (training runs last hours), else a running job is delivered twice.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=48 * 3600)
    }
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="django-db")
CELERY_RESULT_EXTENDED = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "curation.tasks.cascade_run": {"queue": "llm"},
    "curation.tasks.synthesis_run": {"queue": "llm"},
    "curation.tasks.llm_preflight": {"queue": "llm"},
    "curation.tasks.*": {"queue": "default"},
    "review.tasks.*": {"queue": "default"},
    "training.tasks.*": {"queue": "gpu"},
    "evaluation.tasks.*": {"queue": "gpu"},
    # Only freezes snapshots and queues the gpu work: no GPU of its own.
    "experiments.tasks.*": {"queue": "default"},
}
# A task whose worker dies is delivered again rather than lost; jobs are written to resume.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- REST API ---------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.api.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sieve API",
    "DESCRIPTION": (
        "Curate retrieval training data: datasets, imports and snapshots, hard-negative mining, "
        "the LLM judge cascade, synthetic triplets, review campaigns, agreement reports, "
        "approvals, fine-tuning, evaluation and the leaderboard."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

# --- Sieve ------------------------------------------------------------------------------
SIEVE_VERSION = "0.1.0"
SIEVE_EMBEDDING_MODEL = env.str("SIEVE_EMBEDDING_MODEL", default="")  # "" = offline MiniLM
SIEVE_EMBEDDING_PRECISION = env.str("SIEVE_EMBEDDING_PRECISION", default="auto")
SIEVE_EMBEDDING_CACHE_DIR = Path(
    env.str("SIEVE_EMBEDDING_CACHE_DIR", default=str(VAR_DIR / "embeddings"))
)
SIEVE_REVIEW_LOCK_SECONDS = env.int("SIEVE_REVIEW_LOCK_SECONDS", default=600)
# PostgreSQL imports: check foreign keys set-based instead of one trigger query per row, when
# the database role may set session_replication_role (curation/datasets/imports.md).
SIEVE_IMPORT_SET_BASED_FK = env.bool("SIEVE_IMPORT_SET_BASED_FK", default=True)
# What one import may read: the longest line, and what a .zip or .gz may unpack to (in
# total, and as a multiple of its compressed size), so a hostile file cannot exhaust memory.
SIEVE_IMPORT_MAX_LINE_BYTES = env.int("SIEVE_IMPORT_MAX_LINE_BYTES", default=8 * 1024 * 1024)
SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES = env.int(
    "SIEVE_IMPORT_MAX_UNCOMPRESSED_BYTES", default=50 * 1024**3
)
SIEVE_IMPORT_MAX_COMPRESSION_RATIO = env.float("SIEVE_IMPORT_MAX_COMPRESSION_RATIO", default=100.0)
SIEVE_IMPORT_RATIO_CHECKED_ABOVE_BYTES = env.int(
    "SIEVE_IMPORT_RATIO_CHECKED_ABOVE_BYTES", default=100 * 1024 * 1024
)
SIEVE_UPLOAD_DIR = MEDIA_ROOT / "uploads"
# An uploaded file is deleted once its import succeeded; a failed or cancelled import's file
# is kept this many days, for a retry (curation/datasets/upload_retention.py).
SIEVE_UPLOAD_KEEP_FAILED_DAYS = env.int("SIEVE_UPLOAD_KEEP_FAILED_DAYS", default=7)
SIEVE_SNAPSHOT_DIR = MEDIA_ROOT / "snapshots"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"forbidden_without_traceback": {"()": "core.logging.ForbiddenWithoutTraceback"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "httpx": {"level": "WARNING"},
        "httpx2": {"level": "WARNING"},
        "openai": {"level": "WARNING"},
        # A 403 is one line, not a traceback (core/logging.py).
        "django.request": {"filters": ["forbidden_without_traceback"]},
    },
}
# Training artifacts and checkpoints: one folder per run, <SIEVE_MODEL_DIR>/training-<id>/.
SIEVE_MODEL_DIR = Path(env.str("SIEVE_MODEL_DIR", default=str(VAR_DIR / "models")))
# Evaluation: folders that hold BEIR datasets (each a sub-folder with corpus.jsonl[.gz],
# queries.jsonl, qrels/<split>.tsv), offered as local mteb tasks "beir:<folder name>".
SIEVE_EVAL_DATA_DIRS = [
    Path(p) for p in env.list("SIEVE_EVAL_DATA_DIRS", default=[str(VAR_DIR / "eval-data")])
]
# mteb's result JSON, one folder per evaluation run.
SIEVE_EVAL_RESULTS_DIR = Path(
    env.str("SIEVE_EVAL_RESULTS_DIR", default=str(VAR_DIR / "eval-results"))
)


def embedded_files_create(*, var_dir: Path, broker_url: str) -> None:
    """Create the folders the embedded setup writes into: VAR_DIR (the SQLite file lives
    there) and, for the filesystem broker, its message folders (kombu creates none of them).
    Idempotent. Called by the settings that may write (local, test), never at this import."""
    var_dir.mkdir(parents=True, exist_ok=True)
    if broker_url.startswith("filesystem://"):
        for sub in BROKER_FOLDERS:
            (var_dir / "broker" / sub).mkdir(parents=True, exist_ok=True)


def secret_key_file_read(path: Path) -> str:
    """The key in ``path``, generated there on first use (mode 0600) so that sessions survive
    restarts of the embedded setup. Never committed, never logged."""
    if not path.exists():
        from django.core.management.utils import get_random_secret_key

        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(get_random_secret_key())
        path.chmod(0o600)
    return path.read_text().strip()
