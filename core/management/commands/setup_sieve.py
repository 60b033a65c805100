"""First-run setup that ``make run`` calls after ``migrate``: an admin account and the demo.

The admin password is generated, printed once and stored nowhere but as Django's hash.
"""

import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import transaction


class Command(BaseCommand):
    help = "Create the admin account (password printed once) and load the demo dataset."

    def add_arguments(self, parser):
        parser.add_argument(
            "--username", default="admin", help="admin account name (default: admin)"
        )
        parser.add_argument("--no-demo", action="store_true", help="do not load the demo dataset")

    def handle(self, *args, username: str, no_demo: bool, **options):
        self._ensure_admin(username)
        if not no_demo:
            call_command("load_demo", stdout=self.stdout, stderr=self.stderr)

    def _ensure_admin(self, username: str) -> None:
        user_model = get_user_model()
        with transaction.atomic():
            if user_model.objects.filter(username=username).exists():
                self.stdout.write(
                    f"Admin account '{username}' already exists. "
                    "Forgot its password? Reset it with:\n"
                    f"    .venv/bin/python manage.py changepassword {username}"
                )
                return
            password = secrets.token_urlsafe(12)
            user_model.objects.create_superuser(username=username, email="", password=password)
        rule = "-" * 64
        self.stdout.write(
            self.style.SUCCESS(
                f"{rule}\n"
                "  Admin account created. The password is shown only this once:\n"
                f"      username: {username}\n"
                f"      password: {password}\n"
                f"  Sign in at http://127.0.0.1:8000/ . Reset it later with\n"
                f"      .venv/bin/python manage.py changepassword {username}\n"
                f"{rule}"
            )
        )
