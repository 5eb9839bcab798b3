"""Pages of the versions console. Thin: forms in, services and selectors do the work."""

from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import role_required
from accounts.roles import OPERATOR, REVIEWER, has_role
from audit.selectors import audit_for_object
from cascade_admin.errors import Conflict
from cascade_admin.ui import error_text

from . import selectors, services
from .engine import MessagesError, conversation_text
from .forms import CopyForm, KeywordForm, PlaygroundForm, ThresholdsForm
from .models import ClassifierVersion, VersionStatus
from .playground import marked, parse_conversation


def _version(name):
    return get_object_or_404(
        ClassifierVersion.objects.select_related(
            "parent", "keyword_set", "created_by", "frozen_by"
        ),
        name=name,
    )


@require_GET
@role_required(REVIEWER)
def version_list(request):
    versions = selectors.version_list()
    status = request.GET.get("status")
    if status in VersionStatus.values:
        versions = versions.filter(status=status)
    return render(request, "routing/version_list.html", {"versions": versions, "status": status})


@require_GET
@role_required(REVIEWER)
def version_detail(request, name):
    version = _version(name)
    return render(
        request,
        "routing/version_detail.html",
        {
            "version": version,
            "keywords": version.keyword_set.keywords.all(),
            "history": audit_for_object(version, limit=50),
            "copy_form": CopyForm(initial={"name": _next_name(version)}),
            "children": version.children.all(),
            # A draft made by a proposal says where its changes came from.
            "proposal": getattr(version, "proposal", None),
            "scorer_top": version.scorer and selectors.heaviest(version.scorer["features"]),
        },
    )


def _next_name(version) -> str:
    """v7 -> v8 when free; otherwise v7-draft-2, -3, ..."""
    base = version.name
    if base[:1] == "v" and base[1:].isdigit():
        candidate = f"v{int(base[1:]) + 1}"
        if not ClassifierVersion.objects.filter(name=candidate).exists():
            return candidate
    n = 1
    while ClassifierVersion.objects.filter(name=f"{base}-draft-{n}").exists():
        n += 1
    return f"{base}-draft-{n}"


@require_POST
@role_required(OPERATOR)
def version_copy(request, name):
    source = _version(name)
    form = CopyForm(request.POST)
    if form.is_valid():
        try:
            draft = services.version_copy(
                actor=request.user, source=source, name=form.cleaned_data["name"]
            )
        except ValidationError as e:
            messages.error(request, error_text(e))
        else:
            messages.success(request, f"Draft {draft.name} created from {source.name}.")
            return redirect("routing:version-edit", name=draft.name)
    else:
        messages.error(request, "Give the new draft a name.")
    return redirect("routing:version-detail", name=source.name)


@require_http_methods(["GET", "POST"])
@role_required(OPERATOR)
def version_edit(request, name):
    version = _version(name)
    if not version.is_draft:
        messages.error(
            request, f"{version.name} is {version.status}; copy it to a draft to change it."
        )
        return redirect("routing:version-detail", name=name)
    form = ThresholdsForm(
        request.POST or None,
        initial={
            "token_threshold": version.token_threshold,
            "turn_threshold": version.turn_threshold,
            "byte_threshold": version.byte_threshold,
            "notes": version.notes,
        },
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.version_update_draft(actor=request.user, version=version, **form.cleaned_data)
        except (ValidationError, Conflict) as e:
            form.add_error(None, error_text(e))
        else:
            messages.success(request, "Thresholds saved.")
            return redirect("routing:version-edit", name=name)
    return render(
        request,
        "routing/version_edit.html",
        {"version": version, "form": form, **_keyword_context(version, KeywordForm())},
    )


def _keyword_context(version, keyword_form):
    return {
        "version": version,
        "keywords": version.keyword_set.keywords.all(),
        "keyword_form": keyword_form,
    }


def _keyword_panel(request, version, keyword_form=None):
    """The keyword table: the htmx swap target, or a redirect for plain form posts."""
    if not request.headers.get("HX-Request"):
        return redirect("routing:version-edit", name=version.name)
    version.refresh_from_db()
    return render(
        request,
        "routing/_keyword_panel.html",
        _keyword_context(version, keyword_form or KeywordForm()),
    )


@require_POST
@role_required(OPERATOR)
def keyword_add(request, name):
    version = _version(name)
    form = KeywordForm(request.POST)
    if form.is_valid():
        try:
            keyword = services.keyword_add(actor=request.user, version=version, **form.cleaned_data)
        except ValidationError as e:
            form.add_error(None, error_text(e))
        except Conflict as e:
            form.add_error(None, str(e))
        else:
            messages.success(request, f"Added {keyword.text!r}.")
            return _keyword_panel(request, version)
    if not request.headers.get("HX-Request"):
        messages.error(request, " ".join(str(e) for errs in form.errors.values() for e in errs))
    return _keyword_panel(request, version, form)


@require_POST
@role_required(OPERATOR)
def keyword_remove(request, name, keyword_id):
    version = _version(name)
    try:
        services.keyword_remove(actor=request.user, version=version, keyword_id=keyword_id)
    except (ValidationError, Conflict) as e:
        messages.error(request, error_text(e))
    return _keyword_panel(request, version)


@require_POST
@role_required(OPERATOR)
def version_freeze(request, name):
    version = _version(name)
    try:
        services.version_freeze(actor=request.user, version=version)
    except (ValidationError, Conflict) as e:
        messages.error(request, error_text(e))
    else:
        messages.success(request, f"{name} is frozen: it can no longer change.")
    return redirect("routing:version-detail", name=name)


@require_POST
@role_required(OPERATOR)
def version_retire(request, name):
    version = _version(name)
    try:
        services.version_retire(
            actor=request.user, version=version, reason=request.POST.get("reason", "")
        )
    except Conflict as e:
        messages.error(request, str(e))
    else:
        messages.success(request, f"{name} is retired.")
    return redirect("routing:version-detail", name=name)


@require_POST
@role_required(OPERATOR)
def version_delete(request, name):
    version = _version(name)
    try:
        services.version_delete_draft(actor=request.user, version=version)
    except Conflict as e:
        messages.error(request, str(e))
        return redirect("routing:version-detail", name=name)
    messages.success(request, f"Draft {name} deleted.")
    return redirect("routing:version-list")


@require_GET
@role_required(REVIEWER)
def version_diff(request):
    names = list(ClassifierVersion.objects.order_by("-created_at").values_list("name", flat=True))
    old_name, new_name = request.GET.get("old"), request.GET.get("new")
    diff = None
    if old_name and new_name:
        diff = selectors.version_diff(_version(old_name), _version(new_name))
    return render(
        request,
        "routing/version_diff.html",
        {"names": names, "old_name": old_name, "new_name": new_name, "diff": diff},
    )


@require_http_methods(["GET", "POST"])
@role_required(REVIEWER)
def playground(request):
    form = PlaygroundForm(
        request.POST or None,
        initial={"versions": ClassifierVersion.objects.exclude(status=VersionStatus.RETIRED)},
    )
    context: dict[str, Any] = {"form": form}
    if request.method == "POST" and form.is_valid():
        try:
            messages_ = parse_conversation(form.cleaned_data["conversation"])
            text = conversation_text(messages_)
            results = selectors.classify_with(list(form.cleaned_data["versions"]), messages_)
        except MessagesError as e:
            form.add_error("conversation", str(e))
        else:
            context["turns"] = len(messages_)
            context["results"] = [
                {
                    "version": v,
                    "decision": d,
                    "pieces": marked(text, d, selectors.classifier_for(v)),
                    "threshold": v.scorer["threshold"] if v.scorer else None,
                }
                for v, d in results
            ]
    template = "routing/_playground_results.html" if request.headers.get("HX-Request") else None
    return render(request, template or "routing/playground.html", context)


@require_GET
def home(request):
    """Where a person lands: reviewers on their labeling work, operators on the versions."""
    if has_role(request.user, OPERATOR):
        return redirect("routing:version-list")
    return redirect("labeling:home")
