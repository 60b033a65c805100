"""Small request helpers shared by the apps' views."""

from django.core.exceptions import BadRequest


def query_int(request, name: str) -> int | None:
    """The whole number in ``?name=``; None when absent or empty; 400 when it is not one."""
    value = request.GET.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None


def form_error_add(form, error) -> None:
    """Show a service's ``ApplicationError`` on the form: on the field its detail names when
    the form has that field, else above the form."""
    field = error.detail.get("field")
    form.add_error(field if field in form.fields else None, error.message)
