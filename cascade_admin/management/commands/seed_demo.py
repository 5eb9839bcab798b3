"""Demo data for the embedded run: users for each role, a v8 draft built on v7 and, when a
Langfuse (the local stand-in in the embedded run) is configured, synced traffic with two
labeling batches."""

import os
import secrets
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.roles import ADMIN, OPERATOR, REVIEWER
from routing import services
from routing.baseline import ensure_v7
from routing.models import ClassifierVersion, Keyword, KeywordSet

DEMO_USERS = (("admin", ADMIN), ("operator", OPERATOR), ("reviewer", REVIEWER))

# Candidates in the spirit of the spec's week-12 tuning example.
V8_ADDITIONS = [
    ("review", "en", "Demo: code-review requests routed weak drew thumbs-down."),
    ("리뷰", "ko", "Demo: the Korean form of 'review'."),
    ("benchmark", "en", "Demo: performance comparisons need the strong model."),
]


class Command(BaseCommand):
    help = "Create demo users (passwords printed) and a v8 draft from v7. Idempotent."

    def add_arguments(self, parser):
        parser.add_argument(
            "--keep-passwords",
            action="store_true",
            help="Do not reset the demo users' passwords when they exist.",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Run outside the embedded mode too (DATABASE_URL set). It resets the "
            "passwords of the users admin, operator and reviewer if they exist.",
        )

    def handle(self, *args, keep_passwords=False, force=False, **options):
        # bin/console runs it with DATABASE_URL unset; anywhere else it would hand out
        # fresh passwords for a real database's admin account.
        if not (settings.EMBEDDED or force):
            raise CommandError(
                "seed_demo is for the embedded mode (no DATABASE_URL): it creates demo "
                "accounts and resets the passwords of admin, operator and reviewer. "
                "Pass --force to run it against this database anyway."
            )
        accounts = self._seed(keep_passwords)  # the demo traffic is synced on its commit
        if accounts:
            path = self._write_accounts(accounts)
            # Last, so the task output above does not push the passwords off the screen.
            self.stdout.write("Demo accounts (embedded mode only; also in " + str(path) + "):")
            self.stdout.write(
                "\n".join(
                    f"  {role:<9} user: {user:<9} password: {pw}" for user, role, pw in accounts
                )
            )

    def _write_accounts(self, accounts) -> Path:
        """The demo passwords and the stand-in's Langfuse settings, for a second shell."""
        path = Path(settings.VAR_DIR) / "demo-accounts.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = ["# Demo accounts of the embedded console (seed_demo). Keep this file local."]
        lines += [f"{user} {password}" for user, _, password in accounts]
        names = ("LANGFUSE_BASE_URL", "LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY")
        if all(os.environ.get(n) for n in names):
            lines.append("# The Langfuse stand-in: export these in another shell to sync_traces.")
            lines += [f"{n}={os.environ[n]}" for n in names]
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)
        return path

    @transaction.atomic
    def _seed(self, keep_passwords) -> list[tuple[str, str, str]]:
        User = get_user_model()
        accounts = []
        for username, role in DEMO_USERS:
            user, created = User.objects.get_or_create(username=username)
            if created or not keep_passwords:
                password = secrets.token_urlsafe(9)
                user.set_password(password)
                user.is_staff = role == ADMIN
                user.is_superuser = role == ADMIN
                user.save()
                accounts.append((username, role, password))
            user.groups.add(Group.objects.get(name=role))

        v7 = ensure_v7(ClassifierVersion, KeywordSet, Keyword, timezone.now())
        if not ClassifierVersion.objects.filter(name="v8").exists():
            admin = User.objects.get(username="admin")
            v8 = services.version_copy(
                actor=admin, source=v7, name="v8", notes="Demo draft: review/benchmark candidates."
            )
            for text, language, rationale in V8_ADDITIONS:
                services.keyword_add(
                    actor=admin, version=v8, text=text, language=language, rationale=rationale
                )
        if os.environ.get("LANGFUSE_BASE_URL"):
            transaction.on_commit(lambda: self._traffic(User.objects.get(username="operator")))
        return accounts

    def _traffic(self, operator):
        """Sync the stand-in's week of traffic, draw a headline and an FN batch once, and let
        a simulated reviewer label most of them from the generator's ground truth, so the
        metrics, replay, keyword and sweep pages have labels to work on."""
        from labeling.models import Batch, BatchKind
        from labeling.services import batch_create
        from labeling.sync import sync_execute, sync_start
        from tuning.services import report_request

        run = sync_execute(sync_start(actor=operator).pk)
        self.stdout.write(f"Synced {run.created} new traces from Langfuse ({run.status}).")
        if Batch.objects.exists():
            return
        end = timezone.now()
        truth = _standin_truth()
        for kind, size in ((BatchKind.HEADLINE, 120), (BatchKind.FN_CANDIDATES, 40)):
            batch = batch_create(
                actor=operator,
                kind=kind,
                period_start=end - timedelta(days=7),
                period_end=end,
                size=size,
                double_review_share=0.1 if kind == BatchKind.HEADLINE else 0.0,
            )
            labeled = _simulate_reviewer(batch, truth, leave=20)
            self.stdout.write(f"{batch.name}: {labeled} items labeled by the simulated reviewer.")
        with transaction.atomic():
            report_request(
                actor=operator, version="v7", period_start=end - timedelta(days=7), period_end=end
            )


SIMULATED_REVIEWER = "demo-labeler"


def _standin_truth() -> dict[str, str]:
    """The stand-in's ground truth (demo only: a real Langfuse has none)."""
    import httpx

    base = os.environ["LANGFUSE_BASE_URL"].rstrip("/")
    auth = (os.environ.get("LANGFUSE_PUBLIC_KEY", ""), os.environ.get("LANGFUSE_SECRET_KEY", ""))
    try:
        response = httpx.get(f"{base}/_standin/truth", auth=auth, timeout=10)
        response.raise_for_status()
        return response.json()["truth"]
    except (httpx.HTTPError, KeyError, ValueError):
        return {}  # a real Langfuse: no simulated labels


def _simulate_reviewer(batch, truth: dict[str, str], leave: int) -> int:
    """Label all but the last ``leave`` items as the truth says, as a clearly named user."""
    from labeling.services import label_submit

    if not truth:
        return 0
    User = get_user_model()
    reviewer, _ = User.objects.get_or_create(
        username=SIMULATED_REVIEWER,
        defaults={"first_name": "Simulated", "last_name": "reviewer (demo)"},
    )
    reviewer.groups.add(Group.objects.get(name=REVIEWER))
    items = list(batch.items.select_related("trace").order_by("position"))
    count = 0
    for item in items[: max(0, len(items) - leave)]:
        value = truth.get(item.trace.langfuse_id)
        if value:
            label_submit(reviewer=reviewer, item=item, value=value, comment="simulated (demo)")
            count += 1
    return count
