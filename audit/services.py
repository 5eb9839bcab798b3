from typing import Any

from django.db import transaction
from django.db.models import Model

from cascade_admin.actors import Actor, user_of

from .models import AuditEvent


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: Model,
    before: Any = None,
    after: Any = None,
    message: str = "",
) -> AuditEvent:
    """Record one change. Call inside the transaction that makes the change."""
    assert transaction.get_connection().in_atomic_block, "audit inside the change's transaction"
    user = user_of(actor)
    return AuditEvent.objects.create(
        actor=user,
        actor_name=user.get_username() if user else (str(actor) if actor else "system"),
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
        message=message,
    )
