import os

from celery import Celery

# A developer's machine by default (`make run`); production sets DJANGO_SETTINGS_MODULE.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("sieve")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
