"""People for tests: a user with a password the login form accepts (``pw-<username>``) and,
optionally, a role group."""

from django.contrib.auth.models import Group


def user_with_role(django_user_model, username: str, role: str | None = None):
    user = django_user_model.objects.create_user(username=username, password="pw-" + username)
    if role:
        # get_or_create: a transactional test before this one flushes the groups that the
        # migration created.
        user.groups.add(Group.objects.get_or_create(name=role)[0])
    return user
