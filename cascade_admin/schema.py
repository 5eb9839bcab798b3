"""The OpenAPI schema documents the error answers of every operation, in one place.

Errors are JSON: ``{"detail": "..."}``, or for invalid input a 400 naming each field
(``{"name": ["This field is required."]}``). Which codes an operation can answer follows from
the view: 401/403 from its authentication and permissions, 404 from path parameters, 409 for
writes that conflict with the current state, 415 for a body it cannot read, 429 where a
throttle or lockout applies.
"""

from drf_spectacular.openapi import AutoSchema as BaseAutoSchema
from rest_framework import serializers
from rest_framework.permissions import AllowAny


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="What went wrong, for a person to read.")


VALIDATION_ERROR = {
    "type": "object",
    "description": (
        'Each invalid field with its messages ({"name": ["..."]}); "detail" or '
        '"non_field_errors" for errors of the request as a whole.'
    ),
    "additionalProperties": {},
}

WRITES = {"POST", "PUT", "PATCH", "DELETE"}
BODIES = {"POST", "PUT", "PATCH"}


class AutoSchema(BaseAutoSchema):
    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction == "response":
            for code, body, description in self._error_responses():
                if code not in responses:
                    responses[code] = {
                        **self._get_response_for_code(body, code),
                        "description": description,
                    }
        return responses

    def _error_responses(self):
        view = self.view
        yield "400", VALIDATION_ERROR, "Invalid input: the fields at fault and why."
        if view.get_authenticators():
            yield "401", ErrorSerializer, "No credentials, or a token that is invalid or expired."
        if not all(isinstance(p, AllowAny) for p in view.get_permissions()):
            yield "403", ErrorSerializer, "Your role does not allow this."
        if "{" in self.path:
            yield "404", ErrorSerializer, "No such object."
        elif self._is_list_view() and getattr(view, "pagination_class", None):
            yield "404", ErrorSerializer, "No such page."
        if self.method in WRITES:
            yield "409", ErrorSerializer, "Conflicts with the current state (the detail says how)."
        if self.method in BODIES:
            yield "415", ErrorSerializer, "A body in a media type the operation does not read."
        if view.get_throttles():
            yield "429", ErrorSerializer, "Too many requests; retry after Retry-After seconds."
