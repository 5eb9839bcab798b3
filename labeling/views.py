"""Pages for reviewers (labeling) and operators (batches, sync, adjudication, imports)."""

from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import role_required
from accounts.roles import OPERATOR, REVIEWER, has_role
from cascade_admin.errors import Conflict
from cascade_admin.ui import error_text
from routing.models import ClassifierVersion
from routing.playground import explain
from routing.selectors import classifier_for

from . import selectors, services
from .forms import REASON_KEYS, REASON_TAGS, BatchForm, LabelForm
from .langfuse_adapter import LangfuseAdapter, LangfuseConfigError, LangfuseError, RetryPolicy
from .models import Batch, BatchItem, Label, LabelImport, LabelValue, SyncRun
from .sync import ALL_SINCE, sync_end
from .tasks import sync_queue


@require_GET
@role_required(REVIEWER)
def home(request):
    batches = list(Batch.objects.select_related("created_by")[:50])
    progress = selectors.batches_progress([b.pk for b in batches])
    for batch in batches:
        batch.progress = progress[batch.pk]
    return render(
        request,
        "labeling/home.html",
        {
            "batches": batches,
            "runs": SyncRun.objects.all()[:5],
            "form": BatchForm.for_last_week() if has_role(request.user, OPERATOR) else None,
            "backlog": selectors.writeback_backlog(timezone.now()),
        },
    )


@require_POST
@role_required(OPERATOR)
def batch_create(request):
    form = BatchForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "; ".join(f"{f}: {' '.join(map(str, e))}" for f, e in form.errors.items())
        )
        return redirect("labeling:home")
    data = form.cleaned_data
    try:
        batch = services.batch_create(
            actor=request.user,
            kind=data["kind"],
            period_start=data["period_start"],
            period_end=data["period_end"],
            size=data["size"],
            name=data["name"],
            seed=data["seed"],
            classifier_version=data["classifier_version"],
            double_review_share=data["double_review_share"],
            options={
                key: data[key]
                for key in ("stratify_by_tier", "min_cost_usd", "max_chars", "char_margin")
                if data[key] not in (None, False)
            },
        )
    except ValidationError as e:
        messages.error(request, error_text(e))
        return redirect("labeling:home")
    messages.success(request, f"Batch “{batch.name}” created with {batch.items.count()} items.")
    return redirect("labeling:batch", batch_id=batch.pk)


@require_GET
@role_required(OPERATOR)
def sync_runs(request):
    if not request.headers.get("HX-Request"):
        return redirect("labeling:home")  # a fragment: opened directly, show the whole page
    return render(request, "labeling/_sync_runs.html", {"runs": SyncRun.objects.all()[:5]})


@require_POST
@role_required(OPERATOR)
def sync_now(request):
    since = None
    if request.POST.get("all") == "on":
        since = ALL_SINCE
    elif request.POST.get("since"):
        day = parse_date(request.POST["since"])
        if day is None:
            messages.error(request, "since: give a date (YYYY-MM-DD).")
            return redirect("labeling:home")
        since = datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        run = sync_queue(actor=request.user, since=since)
    except Conflict as e:
        messages.error(request, str(e))
    else:
        resumed = f" (resuming after page {run.pages})" if run.resumed else ""
        messages.success(request, f"Sync {run.pk} queued{resumed}.")
    return redirect("labeling:home")


@require_POST
@role_required(OPERATOR)
def langfuse_check(request):
    """Test connection: the server's version and API generation, and the keys."""
    try:
        with LangfuseAdapter.from_env(retry=RetryPolicy(attempts=2)) as adapter:
            info = adapter.check()
    except (LangfuseConfigError, LangfuseError) as e:
        messages.error(request, f"Langfuse: {e}")
    else:
        messages.success(request, f"Connected: {info.describe()}; the keys are accepted.")
    return redirect("labeling:home")


@require_GET
@role_required(REVIEWER)
def batch_detail(request, batch_id):
    batch = get_object_or_404(Batch, pk=batch_id)
    seen = selectors.visibility(request.user, batch)
    tiers_shown = seen.reveals_routing(None)  # every tier visible: a tier filter gives none away
    filters = selectors.ItemFilters.from_query(request.GET, tier_allowed=tiers_shown)
    items = (
        selectors.batch_items(batch, filters)
        .select_related("trace")
        # The table shows a preview; whole conversations stay in the database.
        .only("id", "position", "reviews_required", "final_value", "batch_id", "trace__tier")
        .annotate(preview=selectors.input_preview(120))
        .prefetch_related(Prefetch("labels", queryset=seen.labels()))
        .order_by("position")
    )
    page = Paginator(items, 100).get_page(request.GET.get("page"))
    for it in page.object_list:
        visible = list(it.labels.all())
        it.reveal = seen.reveals_routing(seen.own_label(it, visible))
        it.hidden_labels = it.judged - sum(label.value != "skipped" for label in visible)
    return render(
        request,
        "labeling/batch.html",
        {
            "batch": batch,
            "page": page,
            "filters": filters,
            "tiers_shown": tiers_shown,
            "query": filters.query_string(),
            "progress": selectors.batch_progress(batch),
            "agreement": selectors.batch_agreement(batch),
        },
    )


@require_GET
@role_required(REVIEWER)
def work(request, batch_id):
    """Send the reviewer to the next item they should label."""
    batch = get_object_or_404(Batch, pk=batch_id)
    item = services.item_claim_next(batch=batch, reviewer=request.user)
    if item is None:
        messages.success(request, "Nothing left for you in this batch. Thank you!")
        return redirect("labeling:batch", batch_id=batch.pk)
    return redirect("labeling:item", batch_id=batch.pk, position=item.position)


@require_http_methods(["GET", "POST"])
@role_required(REVIEWER)
def item(request, batch_id, position):
    batch = get_object_or_404(Batch, pk=batch_id)
    item = get_object_or_404(
        BatchItem.objects.select_related("trace"), batch=batch, position=position
    )
    seen = selectors.visibility(request.user, batch)
    mine = seen.own_label(item)
    if request.method == "POST":
        form = LabelForm(request.POST)
        if form.is_valid():
            try:
                services.label_submit(reviewer=request.user, item=item, **form.cleaned_data)
            except (ValidationError, Conflict) as e:
                messages.error(request, error_text(e))
                return redirect("labeling:item", batch_id=batch.pk, position=position)
            return redirect("labeling:work", batch_id=batch.pk)
    last_mine = (
        Label.objects.filter(item__batch=batch, reviewer=request.user)
        .order_by("-updated_at", "-id")
        .select_related("item")
        .only("id", "item__position")
        .first()
    )
    count = batch.items.count()
    reveal = seen.reveals_routing(mine)
    return render(
        request,
        "labeling/item.html",
        {
            "batch": batch,
            "item": item,
            "trace": item.trace,
            "mine": mine,
            "reveal": reveal,
            # A score gives the tier away: only once the routing may be seen.
            "explanation": scorer_explanation(item.trace) if reveal else None,
            "retraction_pending": item.retractions.filter(confirmed_at__isnull=True).exists(),
            "progress": selectors.batch_progress(batch),
            "previous": position - 1 if position > 1 else None,
            "next": position + 1 if position < count else None,
            "last_mine": last_mine,
            # Keys 3-9 and 0 tick the reasons (1 and 2 are the labels).
            "reason_tags": [(v, t, k) for (v, t), k in zip(REASON_TAGS, REASON_KEYS, strict=False)],
        },
    )


def scorer_explanation(trace) -> dict | None:
    """The trace's version's score of it, if that version is a scorer the console knows."""
    version = ClassifierVersion.objects.filter(name=trace.classifier_version).first()
    if version is None or version.scorer is None:
        return None
    return explain(classifier_for(version), trace.input_text, trace.turn_count)


@require_POST
@role_required(REVIEWER)
def undo(request, batch_id):
    """Take back the reviewer's last label or skip in the batch and show that item again."""
    batch = get_object_or_404(Batch, pk=batch_id)
    label_id = request.POST.get("label", "")
    try:
        item = services.label_undo(
            reviewer=request.user,
            batch=batch,
            label_id=int(label_id) if label_id.isdigit() else None,
        )
    except Conflict as e:
        messages.error(request, str(e))
        position = request.POST.get("position", "")
        if position.isdigit():
            return redirect("labeling:item", batch_id=batch.pk, position=int(position))
        return redirect("labeling:batch", batch_id=batch.pk)
    messages.success(request, f"Your label of item {item.position} is undone: label it again.")
    return redirect("labeling:item", batch_id=batch.pk, position=item.position)


@require_GET
@role_required(OPERATOR)
def adjudication(request):
    return render(request, "labeling/adjudication.html", {"items": selectors.disagreements()[:200]})


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR)
def adjudicate(request, item_id):
    """One disputed item in full (conversation, answer, each reviewer's label, reasons and
    comment), and the decision; settling an item you labeled yourself needs a reason."""
    item = get_object_or_404(BatchItem.objects.select_related("trace", "batch"), pk=item_id)
    if request.method == "POST":
        try:
            services.item_adjudicate(
                actor=request.user,
                item=item,
                value=request.POST.get("value", ""),
                note=request.POST.get("note", ""),
            )
        except (ValidationError, Conflict) as e:
            messages.error(request, error_text(e))
            return redirect("labeling:adjudicate", item_id=item.pk)
        messages.success(request, f"{item.batch.name} #{item.position} settled.")
        return redirect("labeling:adjudication")
    labels = item.labels.select_related("reviewer").exclude(value=LabelValue.SKIPPED)
    return render(
        request,
        "labeling/adjudicate.html",
        {
            "item": item,
            "trace": item.trace,
            "labels": labels,
            "own": any(label.reviewer_id == request.user.pk for label in labels),
            "reason_names": dict(REASON_TAGS),
        },
    )


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR)
def imports(request):
    """Upload labels (preview first), and the list of imports with their undo."""
    context: dict[str, Any] = {
        "imports": LabelImport.objects.select_related("created_by", "undone_by")[:50]
    }
    if request.method == "POST":
        upload = request.FILES.get("file")
        preview = request.POST.get("action") == "preview"
        if upload is None:
            messages.error(request, "file: choose a JSONL or CSV file.")
            return redirect("labeling:imports")
        try:
            outcome = services.label_import_create(
                actor=request.user,
                data=upload.read(),
                filename=upload.name or "",
                name=request.POST.get("name", "").strip(),
                dry_run=preview,
                skip_bad=request.POST.get("skip_bad") == "on",
            )
        except (ValidationError, Conflict) as e:
            context["errors"] = (
                [f"{f}: {m}" for f, ms in e.message_dict.items() for m in ms]
                if isinstance(e, ValidationError) and hasattr(e, "error_dict")
                else [error_text(e)]
            )
            return render(request, "labeling/imports.html", context, status=400)
        if preview:
            context["summary"] = outcome.summary()
            return render(request, "labeling/imports.html", context)
        s = outcome.summary()
        messages.success(
            request,
            f"Imported {s['imported']} labels from {upload.name}"
            + (f", replacing {s['replaces']}" if s["replaces"] else "")
            + (f"; {len(s['bad_rows'])} bad rows skipped" if s["bad_rows"] else "")
            + ".",
        )
        return redirect("labeling:imports")
    return render(request, "labeling/imports.html", context)


@require_POST
@role_required(OPERATOR)
def import_undo(request, import_id):
    label_import = get_object_or_404(LabelImport, pk=import_id)
    try:
        services.label_import_undo(actor=request.user, label_import=label_import)
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Import “{label_import.name}” undone.")
    return redirect("labeling:imports")


@require_POST
@role_required(OPERATOR)
def sync_stop(request, run_id):
    run = get_object_or_404(SyncRun, pk=run_id)
    try:
        sync_end(actor=request.user, run=run, reason=request.POST.get("reason", "").strip())
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"Sync {run.pk} ended; the next sync of its window resumes it.")
    return redirect("labeling:home")
