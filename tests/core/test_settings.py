"""The settings modules, each imported in a fresh process with only the environment given here:
base writes nothing, production refuses to start without its secret key and is HTTPS-only,
and local (``make run``) still creates what a first start needs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAFETY_TIMEOUT = 120
SECRET = "x" * 20 + "-a-long-random-looking-test-key-" + "y" * 20
# Variables that would change what is tested, taken from this process's environment (the
# test settings set DATABASE_URL and CELERY_BROKER_URL in it).
SCRUBBED = (
    "DJANGO_SETTINGS_MODULE",
    "DJANGO_SECRET_KEY",
    "DJANGO_DEBUG",
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SIEVE_MEDIA_ROOT",
    "SIEVE_TEST_EMBEDDED",
)
SECURE_SETTINGS = (
    "DEBUG",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SECURE_REDIRECT_EXEMPT",
    "SECURE_CONTENT_TYPE_NOSNIFF",
)


def _env(var_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED}
    env["SIEVE_VAR_DIR"] = str(var_dir)
    env.update(extra)
    return env


def _python(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=SAFETY_TIMEOUT,
    )  # fmt: skip


def _production_settings(var_dir: Path, **extra: str) -> dict:
    env = _env(
        var_dir,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=SECRET,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        **extra,
    )
    script = (
        "import json; from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n) for n in {SECURE_SETTINGS!r}}}))"
    )
    result = _python(env, "-c", script)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_importing_base_writes_nothing(tmp_path):
    # The embedded defaults (no key, SQLite, the filesystem broker) are the ones that wrote.
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    result = _python(_env(var_dir), "-c", "import config.settings.base")
    assert result.returncode == 0, result.stderr
    assert list(var_dir.iterdir()) == []


def test_production_writes_nothing_either(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    _production_settings(var_dir)
    assert list(var_dir.iterdir()) == []


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    env = _env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    result = _python(env, "manage.py", "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "var").exists()


def test_production_takes_a_key_starting_with_a_dollar_as_given(tmp_path):
    # django-environ would read "$..." as the name of another variable, i.e. as no key.
    key = "$" + SECRET
    env = _env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=key,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    result = _python(env, "-c", "from django.conf import settings; print(settings.SECRET_KEY)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == key


def test_production_refuses_the_filesystem_broker(tmp_path):
    env = _env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=SECRET,
    )
    result = _python(env, "manage.py", "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured: CELERY_BROKER_URL" in result.stderr


def test_production_is_https_only_and_never_debug(tmp_path):
    assert _production_settings(tmp_path / "var", DJANGO_DEBUG="true") == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SECURE_REDIRECT_EXEMPT": ["^healthz$"],
        "SECURE_CONTENT_TYPE_NOSNIFF": True,
    }


def test_production_hsts_and_redirect_come_from_the_environment(tmp_path):
    configured = _production_settings(
        tmp_path / "var",
        DJANGO_SECURE_HSTS_SECONDS="31536000",
        DJANGO_SECURE_SSL_REDIRECT="false",
    )
    assert configured["SECURE_HSTS_SECONDS"] == 31536000
    assert configured["SECURE_SSL_REDIRECT"] is False


def test_production_redirects_plain_http_except_the_health_check(tmp_path):
    env = _env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=SECRET,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
    )
    # Django's security middleware alone, in front of a view that answers "ok".
    script = """
import json, django
django.setup()
from django.http import HttpResponse
from django.middleware.security import SecurityMiddleware
from django.test import RequestFactory
middleware = SecurityMiddleware(lambda request: HttpResponse("ok"))
def answer(path, **headers):
    response = middleware(RequestFactory().get(path, HTTP_HOST="localhost", **headers))
    hsts = response.get("Strict-Transport-Security")
    return [response.status_code, response.get("Location"), hsts]
print(json.dumps({
    "http /": answer("/"),
    "http /healthz": answer("/healthz"),
    "https /": answer("/", HTTP_X_FORWARDED_PROTO="https"),
}))
"""
    result = _python(env, "-c", script)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "http /": [301, "https://localhost/", None],
        "http /healthz": [200, None, None],
        "https /": [200, None, "max-age=3600; includeSubDomains"],
    }


def test_production_passes_the_deployment_checklist(tmp_path):
    env = _env(
        tmp_path / "var",
        DJANGO_SETTINGS_MODULE="config.settings.production",
        DJANGO_SECRET_KEY=SECRET,
        CELERY_BROKER_URL="redis://127.0.0.1:6379/0",
        DJANGO_ALLOWED_HOSTS="sieve.example.org",
    )
    result = _python(env, "manage.py", "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("entry", ["manage.py", "celery"])
def test_make_run_path_checks_out_on_local_settings(tmp_path, entry):
    """Without DJANGO_SETTINGS_MODULE, manage.py and the Celery app pick local, which creates
    the key file and the broker's folders a first start needs."""
    var_dir = tmp_path / "var"
    if entry == "manage.py":
        result = _python(_env(var_dir), "manage.py", "check")
        assert result.returncode == 0, result.stderr
        assert "System check identified no issues" in result.stdout
    else:
        script = "from config.celery import app; print(app.conf.broker_url)"
        result = _python(_env(var_dir), "-c", script)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "filesystem://localhost/"
    assert (var_dir / "secret_key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in (var_dir / "broker").iterdir()) == [
        "control",
        "processed",
        "queue",
    ]
