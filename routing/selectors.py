"""Reads: version lists, diffs between versions, and classifying with stored versions."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
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
    scorer: ScorerDiff | None = None  # when either version has a scorer

    @property
    def is_empty(self) -> bool:
        scorer_same = self.scorer is None or self.scorer.is_empty
        return scorer_same and not (self.added or self.removed or self.changed or self.thresholds)

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
            "scorer": self.scorer.as_dict() if self.scorer is not None else None,
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
        if self.scorer is not None and not self.scorer.is_empty:
            lines += self.scorer.markdown(self.old.name, self.new.name)
        lines.append(
            f"{self.old.name}: {self.old.config_sha256[:12]} -> {self.new.name}: "
            f"{self.new.config_sha256[:12]}"
        )
        return "\n".join(lines)


def heaviest(features: list, count: int = 15) -> dict[str, list]:
    """A scorer's heaviest [substring, weight] pairs each way: what pushes a request
    strong, and what pushes it weak."""
    strong = sorted((f for f in features if f[1] > 0), key=lambda f: (-f[1], f[0]))
    weak = sorted((f for f in features if f[1] < 0), key=lambda f: (f[1], f[0]))
    return {"top_strong": strong[:count], "top_weak": weak[:count]}


def _pull(pair) -> tuple:
    return (-abs(pair[1]), pair[0])


@dataclass
class ScorerDiff:
    """What changes between two scorers (either may be None: none, or added/removed)."""

    old: Mapping[str, Any] | None
    new: Mapping[str, Any] | None
    added: list = field(default_factory=list)  # [substring, weight], heaviest first
    removed: list = field(default_factory=list)
    changed: list = field(default_factory=list)  # (substring, old, new), biggest change first
    unchanged: int = 0

    @property
    def is_empty(self) -> bool:
        if self.old is None or self.new is None:
            return self.old is self.new
        same_cut = (self.old["bias"], self.old["threshold"]) == (
            self.new["bias"],
            self.new["threshold"],
        )
        return same_cut and not (self.added or self.removed or self.changed)

    @classmethod
    def of(cls, old, new) -> ScorerDiff:
        diff = cls(old, new)
        before = dict(map(tuple, old["features"])) if old else {}
        after = dict(map(tuple, new["features"])) if new else {}
        diff.added = sorted(([f, w] for f, w in after.items() if f not in before), key=_pull)
        diff.removed = sorted(([f, w] for f, w in before.items() if f not in after), key=_pull)
        both = [f for f in after if f in before]
        diff.changed = sorted(
            ((f, before[f], after[f]) for f in both if before[f] != after[f]),
            key=lambda c: (-abs(c[2] - c[1]), c[0]),
        )
        diff.unchanged = len(both) - len(diff.changed)
        return diff

    def markdown(self, old_name: str, new_name: str, most: int = 10) -> list[str]:
        if self.new is None:
            return [f"### Scorer removed ({len(self.removed)} weighted substrings)", ""]
        lines = ["### Scorer"]
        if self.old is None:
            lines[0] += f" added ({len(self.added)} weighted substrings)"
        lines += [
            "",
            f"| | {old_name} | {new_name} |",
            "|---|---|---|",
            f"| features | {len(self.old['features']) if self.old else 'none'} "
            f"| {len(self.new['features'])} |",
        ]
        for key in ("bias", "threshold"):
            lines.append(f"| {key} | {self.old[key] if self.old else '-'} | {self.new[key]} |")
        lines.append("")
        if self.old is None:
            top = heaviest(self.new["features"], most)
            lines += [
                "Pushes strong: " + _md_pairs(top["top_strong"]),
                "Pushes weak: " + _md_pairs(top["top_weak"]),
                "",
            ]
            return lines
        lines.append(
            f"{len(self.added)} added, {len(self.removed)} removed, {len(self.changed)} "
            f"reweighted, {self.unchanged} unchanged."
        )
        if self.added:
            lines.append("Heaviest added: " + _md_pairs(self.added[:most]))
        if self.removed:
            lines.append("Heaviest removed: " + _md_pairs(self.removed[:most]))
        if self.changed:
            lines.append(
                "Biggest weight changes: "
                + ", ".join(f"`{f}` {a:+.3g} → {b:+.3g}" for f, a, b in self.changed[:most])
            )
        lines.append("")
        return lines

    def as_dict(self, most: int = 20) -> dict[str, Any]:
        def cut(s):
            return None if s is None else {"bias": s["bias"], "threshold": s["threshold"]}

        return {
            "old": cut(self.old),
            "new": cut(self.new),
            "added": len(self.added),
            "removed": len(self.removed),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "heaviest_added": self.added[:most],
            "heaviest_removed": self.removed[:most],
            "biggest_changes": [list(c) for c in self.changed[:most]],
        }


def _md_pairs(pairs) -> str:
    return ", ".join(f"`{f}` {w:+.3g}" for f, w in pairs) or "none"


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
    if old.scorer is not None or new.scorer is not None:
        diff.scorer = ScorerDiff.of(old.scorer, new.scorer)
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
