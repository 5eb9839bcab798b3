import json

from django.core.management.base import CommandError

from routing.management.base import VersionCommand
from routing.models import ClassifierVersion


class Command(VersionCommand):
    help = "Print a version's canonical config JSON: the file a classifier pod loads."

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True)
        parser.add_argument("--output", help="Write to this file instead of stdout.")

    def handle(self, *args, version_name, output=None, **options):
        try:
            version = ClassifierVersion.objects.get(name=version_name)
        except ClassifierVersion.DoesNotExist:
            raise CommandError(f"No version named {version_name!r}.") from None
        if version.is_draft:
            self.stderr.write(f"warning: {version_name} is a draft; its config may still change.")
        body = json.dumps(version.config, ensure_ascii=False, indent=2, sort_keys=True) + "\n"
        if output:
            with open(output, "w", encoding="utf-8") as f:
                f.write(body)
        else:
            self.stdout.write(body, ending="")
