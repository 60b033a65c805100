"""Production: PostgreSQL and Redis (or RabbitMQ) from the environment, behind a TLS proxy.

Set ``DJANGO_SETTINGS_MODULE=config.settings.production`` for every web and worker process
(docs/deployment.md). Nothing is written at import: the secret key comes from the
environment, and the filesystem broker (whose folders only ``local`` creates) is refused.
"""

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, SECRET_KEY, env

if not SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. config.settings.production reads the secret key from "
        "the environment only; give every web and worker process the same one, e.g. from "
        "python -c 'from django.core.management.utils import get_random_secret_key; "
        "print(get_random_secret_key())'"
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Its folders exist only where `make run` made them, and a worker on another machine
    # would never see a task: the first enqueue would fail or wait forever.
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL is not set (or is filesystem://). config.settings.production needs "
        "a broker every process can reach: redis://host:6379/0 or amqp://user:pass@host//. "
        "The filesystem broker is for the embedded setup (config.settings.local)."
    )

DEBUG = False

# HTTPS only. The TLS proxy in front must set X-Forwarded-Proto (and strip it from clients),
# else every request looks like plain HTTP and SECURE_SSL_REDIRECT loops.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
# A load balancer's health check often reaches the web process over plain HTTP.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
# HSTS: browsers refuse plain HTTP to this host for this long. One hour is safe to start
# with; raise it to a year (31536000) once HTTPS is known to work everywhere it is served.
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=True)
# Preloading asks browser vendors to hard-code HTTPS for the whole domain, for months and
# hard to undo: the domain owner's decision, not a default. Hence security.W021 is silenced.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = ["security.W021"]
