from .roles import ADMIN, OPERATOR, REVIEWER, has_role, user_role


def roles(request):
    user = getattr(request, "user", None)
    return {
        "role": user_role(user),
        "is_reviewer": has_role(user, REVIEWER),
        "is_operator": has_role(user, OPERATOR),
        "is_admin": has_role(user, ADMIN),
    }
