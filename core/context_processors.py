from .roles import Role, has_role


def roles(request):
    user = request.user
    return {
        "is_curator": has_role(user, Role.ADMIN, Role.CURATOR),
        "can_read_data": has_role(user, Role.ADMIN, Role.CURATOR, Role.VIEWER),
        "is_annotator": has_role(user, Role.ANNOTATOR),
        "is_admin": has_role(user, Role.ADMIN),
    }
