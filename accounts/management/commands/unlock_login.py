"""Lift a login lockout before it ends (audited), or list who is locked out:

manage.py unlock_login --username NAME
manage.py unlock_login --ip 10.0.0.7
manage.py unlock_login --list
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.lockout import locked_out, unlock


class Command(BaseCommand):
    help = "Forget a username's or a client address's failed logins, lifting its lockout."

    def add_arguments(self, parser):
        parser.add_argument("--username", help="The username that is locked out.")
        parser.add_argument("--ip", help="The client address that is locked out.")
        parser.add_argument("--list", action="store_true", help="Show the current lockouts.")

    def handle(self, *args, username=None, ip=None, list=False, **options):
        if list:
            found = locked_out()
            for row in found:
                self.stdout.write(
                    f"{row['kind']:<10} {row['value']:<40} until {row['until']:%Y-%m-%d %H:%M:%S}Z"
                )
            if not found:
                self.stdout.write("Nobody is locked out.")
            return
        if not (username or ip):
            raise CommandError("Give --username, --ip (or both), or --list.")
        count = unlock(actor="cli", username=username, ip_address=ip)
        who = " and ".join(
            x for x in (username and f"username {username!r}", ip and f"address {ip}") if x
        )
        if count:
            self.stdout.write(f"Unlocked {who}: {count} failed-login record(s) forgotten.")
        else:
            self.stdout.write(f"No failed logins recorded for {who}; nothing to unlock.")
