from .models import AuditEvent


def audit_for_object(obj, limit: int = 100):
    return AuditEvent.objects.filter(
        object_type=obj._meta.label_lower, object_id=str(obj.pk)
    ).select_related("actor")[:limit]
