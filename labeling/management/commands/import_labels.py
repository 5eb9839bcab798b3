from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from cascade_admin.errors import Conflict
from labeling.services import label_import_create


class Command(BaseCommand):
    help = (
        "Import labeled conversations (JSONL, or CSV as pandas writes it) as training labels "
        "for the tuning tools. A file with a bad row imports nothing unless --skip-bad."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="A .jsonl or .csv file.")
        parser.add_argument("--name", default="", help="A name for the import.")
        parser.add_argument("--dry-run", action="store_true", help="Check and count only.")
        parser.add_argument("--skip-bad", action="store_true", help="Import the good rows.")

    def handle(self, *args, file, name, dry_run, skip_bad, **options):
        path = Path(file)
        try:
            data = path.read_bytes()
        except OSError as e:
            raise CommandError(f"{file}: {e.strerror}") from None
        try:
            outcome = label_import_create(
                actor="cli",
                data=data,
                filename=path.name,
                name=name,
                dry_run=dry_run,
                skip_bad=skip_bad,
            )
        except ValidationError as e:
            lines = [f"{k}: {m}" for k, messages in e.message_dict.items() for m in messages]
            raise CommandError("\n".join(lines)) from None
        except Conflict as e:
            raise CommandError(str(e)) from None
        s = outcome.summary()
        verb = "would import" if dry_run else f"imported (import {s['import']})"
        self.stdout.write(
            f"{path.name} ({s['format']}, {s['records']} records): {verb} {s['valid']} labels "
            f"({s['strong_needed']} strong needed, {s['weak_sufficient']} weak sufficient), "
            f"replacing {s['replaces']} earlier label(s)."
        )
        for bad in s["bad_rows"]:
            self.stdout.write(f"  skipped line {bad['line']}: {bad['reason']}")
        for row in s["preview"]:
            text = row["text"].replace("\n", " ")[:80]
            self.stdout.write(f"  line {row['line']}: {row['label']:15} {text}")
