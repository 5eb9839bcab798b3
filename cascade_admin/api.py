"""API-wide behaviour: domain errors become clear HTTP answers."""

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.routers import DefaultRouter
from rest_framework.views import exception_handler as drf_exception_handler

from cascade_admin.errors import Conflict


def exception_handler(exc, context):
    if isinstance(exc, Conflict):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
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
