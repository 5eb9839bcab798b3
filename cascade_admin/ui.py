"""Small helpers shared by the apps' page views."""

from django.core.exceptions import ValidationError


def error_text(error: Exception) -> str:
    """One line for a flash message: field errors as "field: message", others as they are."""
    if isinstance(error, ValidationError):
        if hasattr(error, "error_dict"):
            return " ".join(f"{f}: {' '.join(m)}" for f, m in error.message_dict.items())
        return " ".join(error.messages)
    return str(error)
