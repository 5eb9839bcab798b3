from functools import wraps

from django.core.exceptions import PermissionDenied

from .roles import has_role


def role_required(role: str):
    """Page views: the login middleware already ran; this checks the role (403 otherwise)."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not has_role(request.user, role):
                raise PermissionDenied(f"This page needs the {role} role.")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
