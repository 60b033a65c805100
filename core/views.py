from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from rest_framework.authtoken.models import Token

from .roles import CAN_READ_DATA, Role, has_role, role_required


@require_GET
def home(request):
    """Send each role to where its work is (by URL name: core imports no app above it)."""
    if has_role(request.user, *CAN_READ_DATA):
        return redirect("overview:overview")
    if has_role(request.user, Role.ANNOTATOR):
        return redirect("review:annotator_home")
    return render(request, "core/no_role.html", status=403)


@require_http_methods(["GET", "POST"])
@role_required(*CAN_READ_DATA)
def api_token(request):
    """Show the user's API token; POST creates one, or replaces it (the old one stops working).

    A GET never creates a token, so merely opening the page leaves no credential behind."""
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        messages.success(request, "A new API token was created; the previous one no longer works.")
        return redirect("api_token")
    token = Token.objects.filter(user=request.user).first()
    return render(request, "core/api_token.html", {"token": token, "section": "token"})


@login_not_required
@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")
