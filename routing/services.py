"""Every write to classifier versions and keyword sets goes through here.

Each service runs in one transaction, locks the version it changes, refuses to touch a
version that is no longer a draft, keeps the canonical config in step and writes an
audit record with the state before and after.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from cascade_admin.actors import user_of
from cascade_admin.errors import Conflict

from .engine import ConfigError, canonical_config, normalize_keyword
from .errors import VersionNotEditable
from .languages import guess_language
from .models import ClassifierVersion, Keyword, KeywordSet, Language, VersionStatus

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
EDITABLE_FIELDS = (
    "token_threshold",
    "turn_threshold",
    "byte_threshold",
    "scorer",
    "notes",
    "reported_misroute_rate",
    "reported_slm_usage",
    "reported_cost_per_1k",
    "reported_source",
)


def version_snapshot(version: ClassifierVersion) -> dict[str, Any]:
    """A JSON-able picture of a version, for audit records."""
    return {
        "name": version.name,
        "status": version.status,
        "parent": version.parent.name if version.parent else None,
        "token_threshold": version.token_threshold,
        "turn_threshold": version.turn_threshold,
        "byte_threshold": version.byte_threshold,
        "scorer": scorer_summary(version.scorer),
        "notes": version.notes,
        "keywords": [
            {"text": k.text, "language": k.language, "rationale": k.rationale}
            for k in version.keyword_set.keywords.all()
        ],
        "config_sha256": version.config_sha256,
    }


def scorer_summary(scorer: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A scorer in an audit record: its size and cut (the weights are in the config, whose
    hash the snapshot holds)."""
    if scorer is None:
        return None
    return {
        "features": len(scorer["features"]),
        "bias": scorer["bias"],
        "threshold": scorer["threshold"],
    }


def _clean_keywords(raw: Iterable[Mapping[str, Any] | str]) -> list[dict[str, str]]:
    """Keyword inputs as dicts with text, language and rationale; language guessed if absent."""
    cleaned, errors = [], []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            item = {"text": item}
        text = item.get("text")
        if not isinstance(text, str):
            errors.append(f"Item {index} has no text.")
            continue
        language = item.get("language") or guess_language(text)
        if language not in Language.values:
            errors.append(f"Item {index} ({text!r}): language must be one of {Language.values}.")
            continue
        cleaned.append(
            {"text": text, "language": language, "rationale": item.get("rationale") or ""}
        )
    if errors:
        raise ValidationError({"keywords": errors})
    return cleaned


def _engine_config(version: ClassifierVersion, keyword_texts: list[str]) -> dict[str, Any]:
    return {
        "strong_keywords": keyword_texts,
        "token_threshold": version.token_threshold,
        "turn_threshold": version.turn_threshold,
        "byte_threshold": version.byte_threshold,
        "scorer": version.scorer,
    }


def _check_and_hash(version: ClassifierVersion, keyword_texts: list[str]) -> None:
    """Validate with the engine (the pod's own rules) and store the canonical config."""
    try:
        document = canonical_config(version.name, _engine_config(version, keyword_texts))
    except ConfigError as e:
        errors = dict(e.errors)
        if "strong_keywords" in errors:
            errors["keywords"] = errors.pop("strong_keywords")
        raise ValidationError(errors) from None
    version.config = document
    version.config_sha256 = document["sha256"]
    version.scorer = document.get("scorer")  # canonical: normalized, sorted


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValidationError(
            {
                "name": [
                    "Use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."
                ]
            }
        )
    if ClassifierVersion.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A version named {name!r} already exists."]})


def _write_keywords(keyword_set: KeywordSet, keywords: list[dict[str, str]]) -> None:
    Keyword.objects.bulk_create(
        Keyword(
            keyword_set=keyword_set,
            text=k["text"],
            normalized=normalize_keyword(k["text"]),
            language=k["language"],
            rationale=k["rationale"],
            position=position,
        )
        for position, k in enumerate(keywords)
    )


def _locked_draft(version: ClassifierVersion) -> ClassifierVersion:
    """Re-read the version under a row lock and make sure it is still a draft."""
    locked = (
        ClassifierVersion.objects.select_for_update(of=("self",))
        .select_related("keyword_set", "parent")
        .get(pk=version.pk)
    )
    if locked.status != VersionStatus.DRAFT:
        raise VersionNotEditable(
            f"Version {locked.name} is {locked.status}; only drafts can change."
        )
    return locked


def _keyword_texts(version: ClassifierVersion) -> list[str]:
    return list(version.keyword_set.keywords.values_list("text", flat=True))


@transaction.atomic
def version_create_draft(
    *,
    actor,
    name: str,
    keywords: Iterable[Mapping[str, Any] | str],
    token_threshold: int,
    turn_threshold: int,
    byte_threshold: int | None = None,
    scorer: Mapping[str, Any] | None = None,
    parent: ClassifierVersion | None = None,
    notes: str = "",
    **reported,
) -> ClassifierVersion:
    """Create a new draft from scratch (or from given content, with ``parent`` as lineage)."""
    unknown = set(reported) - set(EDITABLE_FIELDS)
    if unknown:
        raise TypeError(f"unknown fields: {sorted(unknown)}")
    _check_name(name)
    cleaned = _clean_keywords(keywords)
    version = ClassifierVersion(
        name=name,
        parent=parent,
        token_threshold=token_threshold,
        turn_threshold=turn_threshold,
        byte_threshold=byte_threshold,
        scorer=scorer,
        notes=notes,
        created_by=user_of(actor),
        **reported,
    )
    _check_and_hash(version, [k["text"] for k in cleaned])
    keyword_set = KeywordSet.objects.create(name=f"{name} keywords")
    _write_keywords(keyword_set, cleaned)
    version.keyword_set = keyword_set
    try:
        with transaction.atomic():
            version.save()
    except IntegrityError:
        # Lost a race on the unique name with another request.
        raise ValidationError({"name": [f"A version named {name!r} already exists."]}) from None
    audit_record(actor=actor, action="version.create", obj=version, after=version_snapshot(version))
    return version


@transaction.atomic
def version_copy(
    *, actor, source: ClassifierVersion, name: str, notes: str | None = None
) -> ClassifierVersion:
    """A new draft with ``source``'s keywords, thresholds and scorer, and ``source`` as its
    parent."""
    keywords = [
        {"text": k.text, "language": k.language, "rationale": k.rationale}
        for k in source.keyword_set.keywords.all()
    ]
    version = version_create_draft(
        actor=actor,
        name=name,
        keywords=keywords,
        token_threshold=source.token_threshold,
        turn_threshold=source.turn_threshold,
        byte_threshold=source.byte_threshold,
        scorer=source.scorer,
        parent=source,
        notes=notes if notes is not None else f"Drafted from {source.name}.",
    )
    return version


@transaction.atomic
def version_update_draft(
    *, actor, version: ClassifierVersion, keywords=None, **changes
) -> ClassifierVersion:
    """Change a draft's thresholds, scorer, notes, reported figures, or (all of) its
    keywords."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({field: ["This field cannot be changed."] for field in unknown})
    version = _locked_draft(version)
    before = version_snapshot(version)
    for field, value in changes.items():
        setattr(version, field, value)
    if keywords is not None:
        cleaned = _clean_keywords(keywords)
        texts = [k["text"] for k in cleaned]
    else:
        cleaned, texts = None, _keyword_texts(version)
    _check_and_hash(version, texts)
    if cleaned is not None:
        version.keyword_set.keywords.all().delete()
        _write_keywords(version.keyword_set, cleaned)
    version.save()
    audit_record(
        actor=actor,
        action="version.update",
        obj=version,
        before=before,
        after=version_snapshot(version),
    )
    return version


@transaction.atomic
def keyword_add(
    *, actor, version: ClassifierVersion, text: str, language: str = "", rationale: str = ""
) -> Keyword:
    version = _locked_draft(version)
    [cleaned] = _clean_keywords([{"text": text, "language": language, "rationale": rationale}])
    _check_and_hash(version, [*_keyword_texts(version), text])
    last = version.keyword_set.keywords.order_by("-position").first()
    keyword = Keyword.objects.create(
        keyword_set=version.keyword_set,
        text=cleaned["text"],
        normalized=normalize_keyword(cleaned["text"]),
        language=cleaned["language"],
        rationale=cleaned["rationale"],
        position=(last.position + 1) if last else 0,
    )
    version.save(update_fields=["config", "config_sha256", "updated_at"])
    audit_record(
        actor=actor,
        action="keyword.add",
        obj=version,
        after={"text": keyword.text, "language": keyword.language, "rationale": keyword.rationale},
    )
    return keyword


@transaction.atomic
def keyword_remove(*, actor, version: ClassifierVersion, keyword_id: int) -> None:
    version = _locked_draft(version)
    try:
        keyword = version.keyword_set.keywords.get(pk=keyword_id)
    except Keyword.DoesNotExist:
        raise ValidationError(
            {"keyword": [f"No keyword {keyword_id} in {version.name}."]}
        ) from None
    before = {"text": keyword.text, "language": keyword.language, "rationale": keyword.rationale}
    keyword.delete()
    _check_and_hash(version, _keyword_texts(version))
    version.save(update_fields=["config", "config_sha256", "updated_at"])
    audit_record(actor=actor, action="keyword.remove", obj=version, before=before)


@transaction.atomic
def version_freeze(*, actor, version: ClassifierVersion) -> ClassifierVersion:
    """Make a draft immutable for good; its config hash is what pods will report."""
    version = _locked_draft(version)
    before = version_snapshot(version)
    _check_and_hash(version, _keyword_texts(version))
    version.status = VersionStatus.FROZEN
    version.frozen_at = timezone.now()
    version.frozen_by = user_of(actor)
    version.keyword_set.frozen = True
    version.keyword_set.save(update_fields=["frozen"])
    version.save()
    audit_record(
        actor=actor,
        action="version.freeze",
        obj=version,
        before=before,
        after=version_snapshot(version),
    )
    return version


@transaction.atomic
def version_retire(*, actor, version: ClassifierVersion, reason: str = "") -> ClassifierVersion:
    """Mark a frozen version as no longer for use. It stays readable, and unchanged."""
    version = ClassifierVersion.objects.select_for_update().get(pk=version.pk)
    if version.status != VersionStatus.FROZEN:
        raise Conflict(f"Only frozen versions can be retired; {version.name} is {version.status}.")
    version.status = VersionStatus.RETIRED
    version.retired_at = timezone.now()
    version.save(update_fields=["status", "retired_at", "updated_at"])
    audit_record(
        actor=actor,
        action="version.retire",
        obj=version,
        before={"status": VersionStatus.FROZEN},
        after={"status": VersionStatus.RETIRED},
        message=reason,
    )
    return version


@transaction.atomic
def version_delete_draft(*, actor, version: ClassifierVersion) -> None:
    """Throw away a draft nobody builds on. Frozen versions are history and stay."""
    version = _locked_draft(version)
    if version.children.exists():
        raise Conflict(f"Version {version.name} is the parent of other versions.")
    before = version_snapshot(version)
    audit_record(actor=actor, action="version.delete", obj=version, before=before)
    keyword_set = version.keyword_set
    version.delete()
    keyword_set.delete()
