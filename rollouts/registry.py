"""The slot and route registry: every write audited, whether from the admin or a command."""

from __future__ import annotations

from typing import Any, TypeVar

from django.db import transaction
from django.db.models import Model
from django.forms.models import model_to_dict

from audit.services import audit_record
from cascade_admin.actors import Actor

from .models import Route, Slot

M = TypeVar("M", Slot, Route)


def snapshot(obj: Model) -> dict[str, str]:
    """The row's fields as text, for the audit record."""
    return {k: str(v) for k, v in model_to_dict(obj).items()}


@transaction.atomic
def registry_save(*, actor: Actor, obj: Slot | Route, change: bool) -> None:
    """Save a slot or route made or edited elsewhere (the admin's form), audited."""
    before = snapshot(type(obj).objects.get(pk=obj.pk)) if change else None
    obj.save()
    action = f"{obj._meta.model_name}.{'update' if change else 'create'}"
    audit_record(actor=actor, action=action, obj=obj, before=before, after=snapshot(obj))


@transaction.atomic
def registry_delete(*, actor: Actor, obj: Slot | Route) -> None:
    audit_record(
        actor=actor, action=f"{obj._meta.model_name}.delete", obj=obj, before=snapshot(obj)
    )
    obj.delete()


@transaction.atomic
def registry_ensure(*, actor: Actor, model: type[M], name: str, **fields: Any) -> tuple[M, bool]:
    """The slot or route called ``name``, registered with ``fields`` unless it exists
    (a new one is audited); and whether it was created."""
    obj, created = model.objects.get_or_create(name=name, defaults=fields)
    if created:
        action = f"{obj._meta.model_name}.create"
        audit_record(actor=actor, action=action, obj=obj, after=snapshot(obj))
    return obj, created
