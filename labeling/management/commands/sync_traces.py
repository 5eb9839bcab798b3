import sys
from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from cascade_admin.errors import Conflict
from labeling.langfuse_adapter import LangfuseConfigError
from labeling.models import SyncStatus
from labeling.sync import ALL_SINCE, sync_execute, sync_start


def _moment(raw: str | None, option: str) -> datetime | None:
    if raw is None:
        return None
    moment = parse_datetime(raw)
    if moment is None and (day := parse_date(raw)):
        moment = datetime(day.year, day.month, day.day)
    if moment is None:
        raise CommandError(f"{option} {raw!r} is not a date or an ISO 8601 date-time.")
    if timezone.is_naive(moment):
        moment = moment.replace(tzinfo=UTC)  # the options are documented as UTC
    return moment


class Command(BaseCommand):
    help = (
        "Pull routed traces from Langfuse into the console (incremental and idempotent). "
        "An interrupted sync of the same window is resumed from where it stopped."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--since",
            help="Start (UTC date or date-time); default: the watermark less the overlap.",
        )
        parser.add_argument(
            "--until", help="End, exclusive; at most (and by default) now minus the ingest lag."
        )
        parser.add_argument(
            "--all",
            action="store_true",
            help="Read everything Langfuse holds (from 2000-01-01): may be a great many traces.",
        )
        parser.add_argument("--page-size", type=int, default=500)

    def handle(self, *args, since=None, until=None, page_size=500, all=False, **options):
        if all and since:
            raise CommandError("Give --since or --all, not both.")
        if all:
            since = ALL_SINCE.isoformat()
            self.stderr.write(
                "Warning: --all reads every trace Langfuse holds. On a busy project that is "
                "millions of traces and hours of reading; --since reads less."
            )
        try:
            run = sync_start(since=_moment(since, "--since"), until=_moment(until, "--until"))
        except Conflict as e:
            raise CommandError(str(e)) from None
        window = f"{run.since:%Y-%m-%d %H:%M} – {run.until:%Y-%m-%d %H:%M} UTC"
        if run.resumed:
            self.stderr.write(f"Resuming sync run {run.pk} ({window}) after page {run.pages}")
        else:
            self.stderr.write(f"Syncing {window}")
        try:
            run = sync_execute(run.pk, page_size=page_size, on_page=self._progress)
        except LangfuseConfigError as e:
            raise CommandError(f"Langfuse is not configured: {e}") from None
        self.stderr.write("")
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(run.skip_reasons.items()))
        self.stdout.write(
            f"{run.status}: {run.fetched} fetched, {run.created} new, {run.updated} updated, "
            f"{run.skipped} skipped{f' ({reasons})' if reasons else ''}, "
            f"{run.feedback_scores} feedback scores"
        )
        if run.empty_note:
            self.stdout.write(run.empty_note)
        if run.status != SyncStatus.SUCCEEDED:
            raise CommandError(f"sync run {run.pk} failed: {run.error}")

    def _progress(self, run):
        # Cursor paging gives no total, so the bar counts pages and traces as they land.
        if sys.stderr.isatty():
            spinner = "|/-\\"[run.pages % 4]
            self.stderr.write(
                f"\r{spinner} page {run.pages:>5}  {run.fetched:>9,} traces  "
                f"{run.created:>9,} new  {run.skipped:>6,} skipped",
                ending="",
            )
