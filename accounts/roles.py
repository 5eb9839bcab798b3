"""Roles are Django groups, ordered: an admin can do all an operator can, and so on down."""

REVIEWER = "reviewer"
OPERATOR = "operator"
ADMIN = "admin"
ROLES = (REVIEWER, OPERATOR, ADMIN)
_RANK = {role: rank for rank, role in enumerate(ROLES)}


def user_role(user) -> str | None:
    """The highest role a user holds, or None (logged in but not let in yet)."""
    if not user or not user.is_authenticated or not user.is_active:
        return None
    if user.is_superuser:
        return ADMIN
    # Cache on the user object: templates and permissions ask many times per request.
    if not hasattr(user, "_cascade_role"):
        names = {g.name for g in user.groups.all()}
        held = [role for role in ROLES if role in names]
        user._cascade_role = max(held, key=_RANK.__getitem__) if held else None
    return user._cascade_role


def has_role(user, role: str) -> bool:
    """True if the user holds ``role`` or a higher one."""
    held = user_role(user)
    return held is not None and _RANK[held] >= _RANK[role]
