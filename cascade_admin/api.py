"""API-wide behaviour: domain errors become clear HTTP answers."""

from datetime import UTC

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError
from django_filters.fields import IsoDateTimeField
from django_filters.filters import IsoDateTimeFilter
from rest_framework import status
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from cascade_admin.errors import Conflict


def exception_handler(exc, context):
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, DataError):
        # A value the database cannot store or compare (a NUL character in text, a number
        # out of range) that validation let through: the client's input, not a crash.
        reason = str(exc).splitlines()[0] if str(exc) else "not storable"
        return Response({"detail": f"A value was refused: {reason}"}, status=400)
    if isinstance(exc, DjangoValidationError):
        body = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    return drf_exception_handler(exc, context)


def validated(serializer_class, data, *, partial: bool = False) -> dict:
    """Validate request data with ``serializer_class``; a 400 with field errors otherwise."""
    serializer = serializer_class(data=data, partial=partial)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class Router(DefaultRouter):
    """Every app's API router. An id looked up by primary key is numeric unless the viewset
    says otherwise: "abc" is a 404 from the URL resolver, never an ``int()`` error later."""

    def get_lookup_regex(self, viewset, lookup_prefix=""):
        if getattr(viewset, "lookup_field", "pk") == "pk" and not hasattr(
            viewset, "lookup_value_regex"
        ):
            viewset = type(viewset.__name__, (viewset,), {"lookup_value_regex": r"\d+"})
        return super().get_lookup_regex(viewset, lookup_prefix)


class UtcIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time, turned to UTC. PostgreSQL refuses offsets past 15:59, which Python
    accepts (``-17:05``); in UTC every valid instant is storable, and one out of range is a
    400 naming the field, not a database error."""

    def to_python(self, value):
        parsed = super().to_python(value)
        if parsed is None:
            return None
        try:
            return parsed.astimezone(UTC) if parsed.tzinfo else parsed
        except OverflowError:
            raise DjangoValidationError("This time is out of range.", code="invalid") from None


class UtcIsoDateTimeFilter(IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField
