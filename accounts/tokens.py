"""API tokens: several per user, each named and expiring, listed and revoked by their owner
(and by admins). Made from a username and password (POST /api/v1/auth/token/) or on the
tokens page; the secret is shown once and only its hash is stored."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from knox.auth import TokenAuthentication as KnoxTokenAuthentication

from audit.services import audit_record
from cascade_admin.errors import Conflict

from .models import ApiToken
from .roles import ADMIN, has_role

LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write a minute per token


class TokenAuthentication(KnoxTokenAuthentication):
    """``Authorization: Token <secret>``; an expired token is refused (and deleted)."""

    def validate_user(self, auth_token):
        user, token = super().validate_user(auth_token)
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
        return user, token


def token_create(*, actor, user, name: str, days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns it and its secret (which is not stored)."""
    days = settings.API_TOKEN_TTL_DAYS if days is None else days
    if not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        raise ValueError(f"expires_in_days must be 1 to {settings.API_TOKEN_MAX_DAYS}.")
    name = name.strip() or "api"
    with transaction.atomic():
        # Serialize one user's token creations, so the per-user limit holds under races.
        get_user_model()._default_manager.select_for_update().filter(pk=user.pk).first()
        live = ApiToken.objects.filter(user=user).exclude(expiry__lt=timezone.now())
        if live.count() >= settings.API_TOKENS_PER_USER:
            raise Conflict(
                f"{user.get_username()} already has {settings.API_TOKENS_PER_USER} tokens; "
                "revoke one first."
            )
        token, secret = ApiToken.objects.create(
            user=user, expiry=timedelta(days=days), name=name[:100]
        )
        audit_record(actor=actor, action="token.create", obj=token, after=token_summary(token))
    return token, secret


def token_revoke(*, actor, token: ApiToken) -> None:
    with transaction.atomic():
        summary = token_summary(token)
        ApiToken.objects.filter(pk=token.pk).delete()
        audit_record(actor=actor, action="token.revoke", obj=token, before=summary)


def tokens_visible_to(user):
    """Admins see every user's tokens; everyone else their own. Expired ones are left out."""
    tokens = ApiToken.objects.select_related("user").exclude(expiry__lt=timezone.now())
    return tokens if has_role(user, ADMIN) else tokens.filter(user=user)


def token_summary(token: ApiToken) -> dict:
    return {
        "name": token.name,
        "user": token.user.get_username(),
        "key": token.token_key,
        "expiry": token.expiry.isoformat() if token.expiry else None,
    }
