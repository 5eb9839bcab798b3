"""Reads: version lists, diffs between versions, and classifying with stored versions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Count

from .engine import Classifier, Decision, build_classifier
from .models import ClassifierVersion

THRESHOLD_FIELDS = ("token_threshold", "turn_threshold", "byte_threshold")


def version_list():
    return (
        ClassifierVersion.objects.select_related("parent")
        .annotate(keyword_count=Count("keyword_set__keywords"))
        .order_by("-created_at", "-id")
    )


def version_get(name: str) -> ClassifierVersion:
    return ClassifierVersion.objects.select_related("parent", "keyword_set").get(name=name)


@dataclass
class VersionDiff:
    old: ClassifierVersion
    new: ClassifierVersion
    added: list = field(default_factory=list)  # Keyword rows of ``new``
    removed: list = field(default_factory=list)  # Keyword rows of ``old``
    changed: list = field(default_factory=list)  # (old Keyword, new Keyword): rationale/language
    thresholds: list = field(default_factory=list)  # (field, old value, new value)

    @property
    def is_empty(self) -> bool:
        return not (self.added or self.removed or self.changed or self.thresholds)

    def as_dict(self) -> dict[str, Any]:
        def kw(k):
            return {"text": k.text, "language": k.language, "rationale": k.rationale}

        return {
            "old": self.old.name,
            "new": self.new.name,
            "keywords_added": [kw(k) for k in self.added],
            "keywords_removed": [kw(k) for k in self.removed],
            "keywords_changed": [{"old": kw(a), "new": kw(b)} for a, b in self.changed],
            "thresholds_changed": [{"field": f, "old": a, "new": b} for f, a, b in self.thresholds],
            "markdown": self.markdown(),
        }

    def markdown(self) -> str:
        """A change summary to paste into a pull request or a change ticket."""
        lines = [f"## Classifier {self.new.name} (from {self.old.name})", ""]
        if self.is_empty:
            return "\n".join([*lines, "No changes."])
        if self.added:
            lines.append(f"### Keywords added ({len(self.added)})")
            lines += [_md_keyword(k) for k in self.added]
            lines.append("")
        if self.removed:
            lines.append(f"### Keywords removed ({len(self.removed)})")
            lines += [_md_keyword(k) for k in self.removed]
            lines.append("")
        if self.changed:
            lines.append(f"### Keywords with new language or rationale ({len(self.changed)})")
            lines += [_md_keyword(b) for _, b in self.changed]
            lines.append("")
        if self.thresholds:
            lines += ["### Thresholds", "", f"| setting | {self.old.name} | {self.new.name} |"]
            lines.append("|---|---|---|")
            lines += [f"| {f} | {_md(a)} | {_md(b)} |" for f, a, b in self.thresholds]
            lines.append("")
        lines.append(
            f"{self.old.name}: {self.old.config_sha256[:12]} -> {self.new.name}: "
            f"{self.new.config_sha256[:12]}"
        )
        return "\n".join(lines)


def _md(value) -> str:
    return "off" if value is None else str(value)


def _md_keyword(k) -> str:
    rationale = f" — {k.rationale}" if k.rationale else ""
    return f"- `{k.text}` ({k.language}){rationale}"


def version_diff(old: ClassifierVersion, new: ClassifierVersion) -> VersionDiff:
    """What changes from ``old`` to ``new``; keywords compare in their normalized form."""
    old_kw = {k.normalized: k for k in old.keyword_set.keywords.all()}
    new_kw = {k.normalized: k for k in new.keyword_set.keywords.all()}
    diff = VersionDiff(old=old, new=new)
    diff.added = [k for n, k in new_kw.items() if n not in old_kw]
    diff.removed = [k for n, k in old_kw.items() if n not in new_kw]
    diff.changed = [
        (old_kw[n], k)
        for n, k in new_kw.items()
        if n in old_kw and (old_kw[n].language, old_kw[n].rationale) != (k.language, k.rationale)
    ]
    diff.thresholds = [
        (f, getattr(old, f), getattr(new, f))
        for f in THRESHOLD_FIELDS
        if getattr(old, f) != getattr(new, f)
    ]
    return diff


_COMPILED: OrderedDict[str, Classifier] = OrderedDict()
COMPILED_CACHE_SIZE = 64
_COMPILED_LOCK = threading.Lock()


def classifier_for(version: ClassifierVersion) -> Classifier:
    """The version's compiled classifier, cached by config hash: the hash covers the whole
    canonical config, so a draft edit never meets a stale entry."""
    sha = version.config_sha256
    with _COMPILED_LOCK:
        classifier = _COMPILED.get(sha)
        if classifier is not None:
            _COMPILED.move_to_end(sha)
            return classifier
    skip = ("schema", "version", "sha256")
    classifier = build_classifier({k: v for k, v in version.config.items() if k not in skip})
    with _COMPILED_LOCK:
        _COMPILED[sha] = classifier
        while len(_COMPILED) > COMPILED_CACHE_SIZE:
            _COMPILED.popitem(last=False)
    return classifier


def classify_with(versions: list[ClassifierVersion], messages: list) -> list[tuple[Any, Decision]]:
    """Decide one conversation with several versions. Raises MessagesError on bad messages."""
    return [(version, classifier_for(version).classify(messages)) for version in versions]
