"""Probes for Kubernetes: no login, no session, no trailing slash."""

from django.contrib.auth.decorators import login_not_required
from django.contrib.staticfiles.storage import staticfiles_storage
from django.db import connection
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

READINESS_ASSET = "favicon.svg"  # every page links it


@require_GET
@never_cache
@login_not_required
def healthz(request):
    """The process serves requests."""
    return HttpResponse("ok", content_type="text/plain")


@require_GET
@never_cache
@login_not_required
def readyz(request):
    """The process can do its work: the database answers and the static files are there."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as e:  # any failure means not ready
        return HttpResponse(f"database unavailable: {type(e).__name__}", status=503)
    try:
        # Without collected static files every page fails to render: not ready either.
        staticfiles_storage.url(READINESS_ASSET)
    except ValueError as e:
        return HttpResponse(f"static files missing ({e}); run manage.py collectstatic", status=503)
    return HttpResponse("ready", content_type="text/plain")
