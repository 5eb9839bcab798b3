from datetime import date

from django.db.models import Q, QuerySet

from .models import AuditEvent


def audit_for_object(obj, limit: int = 100):
    return AuditEvent.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk)
    ).select_related("actor")[:limit]


def audit_events(
    *,
    actor: str = "",
    action: str = "",
    obj: str = "",
    since: date | None = None,
    until: date | None = None,
) -> QuerySet[AuditEvent]:
    """The log, newest first, narrowed by who (username), what (action prefix), which object
    (its type or name) and when (``since`` / ``until``: dates, ``until`` inclusive)."""
    events = AuditEvent.objects.select_related("actor")
    if actor:
        events = events.filter(actor_name__icontains=actor)
    if action:
        events = events.filter(action__startswith=action)
    if obj:
        events = events.filter(Q(object_type__icontains=obj) | Q(object_repr__icontains=obj))
    if since is not None:
        events = events.filter(created_at__date__gte=since)
    if until is not None:
        events = events.filter(created_at__date__lte=until)
    return events
