"""Who did something: a user, or a name for the console itself ("cli", "beat", "system").

Services take an ``actor`` and record it; only a logged-in user goes into a user column."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

Actor = User | AnonymousUser | str | None


def user_of(actor: Actor) -> User | None:
    """The user behind ``actor``; None for the console itself or an anonymous visitor."""
    return actor if isinstance(actor, User) and actor.is_authenticated else None
