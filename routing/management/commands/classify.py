import json
import sys

from django.core.management.base import CommandError

from routing.engine import MessagesError
from routing.management.base import VersionCommand
from routing.models import ClassifierVersion
from routing.selectors import classifier_for


class Command(VersionCommand):
    help = (
        'Classify conversations: one {"messages": [...]} per input line, one '
        '{"tier", "reasons", "matched_keywords"} per output line, plus "score" and '
        '"top_features" (the five present substrings that pushed it most) for a scorer version.'
    )

    def add_arguments(self, parser):
        parser.add_argument("--version", dest="version_name", required=True)
        parser.add_argument("--input", help="JSON Lines file (default: stdin).")
        parser.add_argument("--output", help="JSON Lines file (default: stdout).")

    def handle(self, *args, version_name, input=None, output=None, **options):
        try:
            version = ClassifierVersion.objects.get(name=version_name)
        except ClassifierVersion.DoesNotExist:
            raise CommandError(f"No version named {version_name!r}.") from None
        classifier = classifier_for(version)
        # Bytes, decoded line by line: one line of bad UTF-8 is reported, not fatal.
        source = open(input, "rb") if input else sys.stdin.buffer  # noqa: SIM115
        sink = open(output, "w", encoding="utf-8") if output else self.stdout  # noqa: SIM115
        failures = 0
        try:
            for number, raw in enumerate(source, start=1):
                if not raw.strip():
                    continue
                try:
                    decision = classifier.classify(line_messages(raw))
                except MessagesError as e:
                    failures += 1
                    self.stderr.write(f"line {number}: {e}")
                    continue
                sink.write(json.dumps(decision.as_dict(), ensure_ascii=False) + "\n")
        finally:
            if input:
                source.close()
            if output:
                sink.close()
        if failures:
            raise CommandError(f"{failures} line(s) could not be classified.")


def line_messages(raw: bytes):
    """The messages of one input line; raises MessagesError saying what is wrong with it."""
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise MessagesError(f"not valid UTF-8 (byte {e.start + 1}: {e.reason})") from None
    except json.JSONDecodeError as e:
        raise MessagesError(f"not valid JSON: {e}") from None
    if not isinstance(record, dict) or "messages" not in record:
        raise MessagesError('expected an object with "messages"')
    return record["messages"]
