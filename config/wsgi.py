import os

from django.core.wsgi import get_wsgi_application

# Only a deployment's WSGI server (gunicorn, uWSGI) imports this module without the variable
# set (`make run`'s runserver comes through manage.py, which sets it), so default to the
# settings that refuse to start without a secret key rather than to the embedded ones.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
application = get_wsgi_application()
