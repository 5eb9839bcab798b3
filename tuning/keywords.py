"""Keyword candidates mined from false negatives.

Terms that are frequent in strong-needed requests the version routed weak (its false
negatives) and rare in weak-sufficient ones, scored by the log-odds ratio with an
informative Dirichlet prior (Monroe, Colaresi & Quinn 2008): the prior is the term's share
of all labeled text, so rare terms are not over-trusted, and the z-score accounts for how
many documents a difference rests on.

Terms come from the prose only (``tuning.terms``): code, fenced or pasted, is dropped, and
Korean words come from a morphological analyser, so particles and endings are never terms.
Every candidate is then checked the way the engine would use it (a lower-cased substring
of the whole text) on the labeled requests (FN fixed, FP added; a collapsed item counts
once per request it stands for) and on the period's traffic (the SLM usage it would take
away).
"""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import ahocorasick_rs

from routing.models import ClassifierVersion
from routing.selectors import classifier_for

from .selectors import period_traffic, stream, training_rows

STRONG, WEAK_OK = "strong_needed", "weak_sufficient"
PRIOR_STRENGTH = 500.0  # alpha_0: how many pseudo-terms the background prior is worth
MIN_SUPPORT = 2


def _normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text).lower()


def log_odds_z(y_a: int, n_a: float, y_b: int, n_b: float, alpha_w: float, alpha_0: float) -> float:
    """Log-odds ratio of a term between corpora a and b with a Dirichlet prior, as a z-score."""
    delta = math.log((y_a + alpha_w) / (n_a + alpha_0 - y_a - alpha_w)) - math.log(
        (y_b + alpha_w) / (n_b + alpha_0 - y_b - alpha_w)
    )
    variance = 1 / (y_a + alpha_w) + 1 / (y_b + alpha_w)
    return delta / math.sqrt(variance)


def score_terms(
    positives: Iterable[set[str]], negatives: Iterable[set[str]], background: Iterable[set[str]]
) -> list[tuple[str, float, int, int]]:
    """(term, z, count in positives, count in negatives), best first; support >= 2."""
    pos: Counter[str] = Counter()
    neg: Counter[str] = Counter()
    bg: Counter[str] = Counter()
    for doc in positives:
        pos.update(doc)
    for doc in negatives:
        neg.update(doc)
    for doc in background:
        bg.update(doc)
    n_a, n_b, n_bg = sum(pos.values()), sum(neg.values()), sum(bg.values())
    if not n_a or not n_bg:
        return []
    scored = []
    for term, y_a in pos.items():
        if y_a < MIN_SUPPORT:
            continue
        # The background holds the positives, so this stays below alpha_0; the cap keeps
        # every log argument positive for odd inputs.
        alpha_w = min(PRIOR_STRENGTH * max(bg[term], y_a) / n_bg, PRIOR_STRENGTH / 2)
        scored.append(
            (term, log_odds_z(y_a, n_a, neg[term], n_b, alpha_w, PRIOR_STRENGTH), y_a, neg[term])
        )
    scored.sort(key=lambda s: (-s[1], -len(s[0]), s[0]))
    return scored


def mine(
    version: ClassifierVersion,
    start: datetime,
    end: datetime,
    *,
    limit: int = 20,
    progress: Callable[[int], None] = lambda p: None,
) -> dict:
    """Candidates for ``version`` from every labeled request of the period: headline,
    discovery and imported labels (this finds keywords, it does not estimate rates)."""
    from .terms import terms_many

    rows, inputs = training_rows(start, end)
    classifier = classifier_for(version)
    tiers = [classifier.classify_text(r.text, r.turn_count, explain=False).tier for r in rows]
    docs = terms_many([r.text for r in rows])
    fn = [i for i, r in enumerate(rows) if r.label == STRONG and tiers[i] == "weak"]
    weak_ok = [i for i, r in enumerate(rows) if r.label == WEAK_OK]
    scored = score_terms((docs[i] for i in fn), (docs[i] for i in weak_ok), docs)
    progress(30)

    texts = [_normalize(r.text) for r in rows]
    fp_pool = [i for i in weak_ok if tiers[i] == "weak"]  # weak-sufficient, still routed weak
    candidates: list[dict[str, Any]] = []
    kept_sets: list[tuple[str, frozenset[int]]] = []
    for term, z, support, in_weak in scored[: limit * 10]:
        fixed = frozenset(i for i in fn if term in texts[i])
        if not fixed:
            continue
        if any(
            fixed == other_fixed and (term in other or other in term)
            for other, other_fixed in kept_sets
        ):
            continue  # a variant of a stronger candidate that fixes the same items
        kept_sets.append((term, fixed))
        candidates.append(
            {
                "term": term,
                "z": round(z, 2),
                "support": support,
                "in_weak_sufficient": in_weak,
                "fn_fixed": len(fixed),
                "fn_fixed_requests": sum(rows[i].requests for i in fixed),
                "fp_added": sum(1 for i in fp_pool if term in texts[i]),
                "fp_added_requests": sum(rows[i].requests for i in fp_pool if term in texts[i]),
                "examples": [rows[i].langfuse_id for i in sorted(fixed)[:3]],
            }
        )
        if len(candidates) >= limit:
            break
    progress(50)
    traffic = _traffic_effect(classifier, [c["term"] for c in candidates], start, end)
    for candidate in candidates:
        moved = traffic["moved"].get(candidate["term"], 0)
        candidate["traffic_moved_to_strong"] = moved
        candidate["slm_usage_change"] = (
            -moved / traffic["requests"] if traffic["requests"] else None
        )
    progress(95)
    return {
        "version": version.name,
        "since": start.isoformat(),
        "until": end.isoformat(),
        "labeled": len(rows),
        "labels": inputs["counts"],
        "false_negatives": len(fn),
        "weak_sufficient": len(weak_ok),
        "traffic_requests": traffic["requests"],
        "batches": inputs["batches"],
        "candidates": candidates,
    }


def _traffic_effect(classifier, candidate_terms: list[str], start, end) -> dict:
    """How many of the period's requests each term would move from weak to strong."""
    moved: Counter = Counter()
    requests = 0
    automaton = ahocorasick_rs.AhoCorasick(candidate_terms) if candidate_terms else None
    for text, turns in stream(period_traffic(start, end), "input_text", "turn_count"):
        requests += 1
        if automaton is None or classifier.classify_text(text, turns, explain=False).tier != "weak":
            continue
        hits = automaton.find_matches_as_indexes(text.lower(), overlapping=True)
        for index in {index for index, _, _ in hits}:
            moved[candidate_terms[index]] += 1
    return {"requests": requests, "moved": moved}
