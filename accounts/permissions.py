from rest_framework.permissions import SAFE_METHODS, BasePermission

from .roles import ADMIN, OPERATOR, REVIEWER, has_role


class ReadReviewerWriteOperator(BasePermission):
    """Reading needs the reviewer role; anything that changes state needs operator."""

    message = "Your role does not allow this."

    def has_permission(self, request, view):
        needed = REVIEWER if request.method in SAFE_METHODS else OPERATOR
        return has_role(request.user, needed)


class IsReviewer(BasePermission):
    """For read-like POSTs (classify a conversation): any role will do."""

    def has_permission(self, request, view):
        return has_role(request.user, REVIEWER)


class IsOperator(BasePermission):
    def has_permission(self, request, view):
        return has_role(request.user, OPERATOR)


class IsAdmin(BasePermission):
    def has_permission(self, request, view):
        return has_role(request.user, ADMIN)
