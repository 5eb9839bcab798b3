"""Password guessing: failed logins lock out a username, and a client address, for a while.

django-axes counts the failures (the login page and the API's token endpoint both go through
``authenticate``); this module decides what a locked-out client is told, audits each lockout
once, and lifts lockouts early for an admin.
"""

from __future__ import annotations

import math
from datetime import datetime

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.dispatch import receiver
from django.http import HttpResponse, JsonResponse
from django.shortcuts import render
from django.utils import timezone

from audit.services import audit_record


class LockoutBackend(AxesStandaloneBackend):
    """Refuses locked-out clients. Without a request (a management command checking a
    password) there is no client to count, so the check is skipped."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def lockout_ends(*, username: str | None, ip_address: str | None) -> datetime | None:
    """When the later of the username's and the address's lockouts ends (None: not locked).

    Failures count within the cool-off window, each attempt row by its latest failure; a lock
    lifts once enough rows have aged out that the rest sum to less than the limit."""
    cool_off = get_cool_off()
    since = timezone.now() - cool_off
    ends = []
    for key in (("username", username), ("ip_address", ip_address)):
        if not key[1]:
            continue
        rows = (
            AccessAttempt.objects.filter(Q(key), attempt_time__gte=since)
            .order_by("-attempt_time")
            .values_list("attempt_time", "failures_since_start")
        )
        total = 0
        for attempt_time, failures in rows:
            total += failures
            if total >= settings.AXES_FAILURE_LIMIT:
                ends.append(attempt_time + cool_off)
                break
    return max(ends, default=None)


def lockout_response(request, original_response=None, credentials=None):
    """A 429 with Retry-After: JSON for the API, the styled page for people."""
    username = get_client_username(request, credentials)
    ends = lockout_ends(username=username, ip_address=getattr(request, "axes_ip_address", None))
    seconds = max(1, math.ceil((ends - timezone.now()).total_seconds())) if ends else 1
    minutes = math.ceil(seconds / 60)
    detail = f"Too many failed logins. Try again in {minutes} minute{'s' if minutes != 1 else ''}."
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": detail}, status=429)
    else:
        response = render(
            request, "registration/locked_out.html", {"detail": detail, "ends": ends}, status=429
        )
    response["Retry-After"] = str(seconds)
    return response


@receiver(user_locked_out)
def audit_lockout(sender, request, username, ip_address, **kwargs):
    # axes sends this signal on the failure that locks and again on every refused attempt
    # during the lockout; only the locking failure has counted failures on the request.
    if getattr(request, "axes_failures_since_start", None) is None:
        return
    attempt = (
        AccessAttempt.objects.filter(username=username, ip_address=ip_address)
        .order_by("-attempt_time")
        .first()
    )
    if attempt is None:
        return
    ends = lockout_ends(username=username, ip_address=ip_address)
    with transaction.atomic():
        audit_record(
            actor=None,
            action="auth.lockout",
            obj=attempt,
            after={
                "username": username,
                "ip_address": ip_address,
                "path": request.path_info,
                "failures": request.axes_failures_since_start,
                "until": ends.isoformat() if ends else None,
            },
            message=f"{request.axes_failures_since_start} failed logins; locked out",
        )


def locked_out() -> list[dict]:
    """Usernames and addresses locked out now, with when each lock ends."""
    since = timezone.now() - get_cool_off()
    recent = AccessAttempt.objects.filter(attempt_time__gte=since)
    found = []
    for field in ("username", "ip_address"):
        for value in recent.values_list(field, flat=True).distinct():
            ends = lockout_ends(**{"username": None, "ip_address": None, field: value})
            if value and ends:
                found.append({"kind": field, "value": value, "until": ends})
    return found


def unlock(*, actor, username: str | None = None, ip_address: str | None = None) -> int:
    """Forget the failed logins of a username and/or an address (audited); how many rows."""
    if not (username or ip_address):
        raise ValueError("Name a username or an address to unlock.")
    match = Q()
    if username:
        match |= Q(username=username)
    if ip_address:
        match |= Q(ip_address=ip_address)
    with transaction.atomic():
        rows = list(AccessAttempt.objects.select_for_update().filter(match).order_by("id"))
        if not rows:
            return 0
        AccessAttempt.objects.filter(pk__in=[r.pk for r in rows]).delete()
        audit_record(
            actor=actor,
            action="auth.unlock",
            obj=rows[0],
            before={
                "attempts": [
                    {
                        "username": r.username,
                        "ip_address": r.ip_address,
                        "failures": r.failures_since_start,
                    }
                    for r in rows
                ]
            },
            after={"username": username, "ip_address": ip_address},
        )
    return len(rows)
