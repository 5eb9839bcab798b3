from django.core.management.base import BaseCommand


class VersionCommand(BaseCommand):
    """A command whose ``--version`` names a classifier version (not Django's own version)."""

    def create_parser(self, prog_name, subcommand, **kwargs):
        return super().create_parser(prog_name, subcommand, conflict_handler="resolve", **kwargs)
