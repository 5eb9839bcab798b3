"""Put a user in a role's group, or take them out of it (audited):

    manage.py grant_role USER ROLE [--remove]

ROLE is reviewer, operator or admin (accounts/roles.py); the group is created if missing.
The same as adding the user to the group in /django-admin/, for hosts without a browser yet.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts.roles import ROLES, user_role
from audit.services import audit_record


class Command(BaseCommand):
    help = "Give a user a role (reviewer, operator, admin), or take it away with --remove."

    def add_arguments(self, parser):
        parser.add_argument("user", help="The user's username.")
        parser.add_argument("role", help=f"One of: {', '.join(ROLES)}.")
        parser.add_argument("--remove", action="store_true", help="Take the role away.")

    def handle(self, *args, user, role, remove, **options):
        # Checked here rather than with argparse choices, so the message is the same from the
        # shell and from call_command.
        if role not in ROLES:
            raise CommandError(f"Unknown role {role!r}: use one of {', '.join(ROLES)}.")
        User = get_user_model()
        with transaction.atomic():
            try:
                account = User._default_manager.select_for_update().get(
                    **{User.USERNAME_FIELD: user}
                )
            except User.DoesNotExist:
                raise CommandError(f"No user {user!r}.") from None
            group, _ = Group.objects.get_or_create(name=role)
            before = _roles(account)
            if remove and role not in before:
                self.stdout.write(f"{user} does not have the role {role}; nothing changed.")
                return
            if not remove and role in before:
                self.stdout.write(f"{user} already has the role {role}; nothing changed.")
                return
            if remove:
                account.groups.remove(group)
            else:
                account.groups.add(group)
            audit_record(
                actor="cli",
                action="user.revoke_role" if remove else "user.grant_role",
                obj=account,
                before={"roles": before},
                after={"roles": _roles(account)},
                message=role,
            )
        effective = user_role(User._default_manager.get(pk=account.pk)) or "none"
        verb = "removed from" if remove else "added to"
        self.stdout.write(f"{user} {verb} {role} (effective role: {effective}).")
        if account.is_superuser:
            self.stdout.write(f"Note: {user} is a superuser, which acts as admin regardless.")


def _roles(account) -> list[str]:
    return sorted(account.groups.filter(name__in=ROLES).values_list("name", flat=True))
