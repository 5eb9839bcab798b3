"""Keyword health: how each keyword of a version does on every labeled request.

Per keyword: its labeled hits by source, the precision of those hits (the share that needed
the strong tier, per request, with its interval), its share of the traffic, and the hits
it alone sends strong (no other keyword, no threshold, no score at or above a scorer's
cut). A keyword whose lone hits are mostly weak-sufficient does harm: removing it would fix
more requests than it breaks, and the table proposes that. The same evidence the proposal
search uses, shown per keyword.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
from django.utils import timezone

from routing.models import ClassifierVersion
from routing.selectors import classifier_for

from . import proposals, selectors
from .search import Rule, Settings, hit_matrix, scores_from_hits
from .stats import weighted_proportion

MIN_GAIN = Settings.min_gain  # distinct inputs a removal must fix on balance
TRAFFIC_DAYS = 7


def keyword_health(version: ClassifierVersion, *, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    classifier = classifier_for(version)
    config = classifier.config
    keywords = list(config.keywords)
    rows, summary = selectors.training_rows()
    labels = proposals.labels_from(rows, config.byte_threshold)
    rule = Rule(frozenset(keywords), config.token_threshold, config.turn_threshold)
    since = now - timedelta(days=TRAFFIC_DAYS)
    features = [f for f, _ in version.scorer["features"]] if version.scorer else []
    traffic = proposals.traffic_loader(since, now, config.byte_threshold)(keywords + features)
    matrix = hit_matrix(keywords, labels.texts)
    by_threshold = labels.forced | (labels.chars > rule.token_threshold)
    by_threshold |= labels.turns > rule.turn_threshold
    if classifier.scorer is not None:  # a keyword is not alone where the score sends strong
        scores = [classifier.classify_text(r.text, r.turn_count, explain=False).score for r in rows]
        by_threshold |= np.array(scores, dtype=float) >= classifier.scorer.threshold
    cover = matrix.sum(0) if keywords else np.zeros(labels.size, dtype=int)
    tcover = None
    if traffic is not None:
        tcover = np.zeros(traffic.size, dtype=np.int64)
        for keyword in keywords:
            tcover[traffic.hits[keyword]] += 1
        t_by_threshold = traffic.forced | (traffic.chars > rule.token_threshold)
        t_by_threshold |= traffic.turns > rule.turn_threshold
        if version.scorer:
            scorer = version.scorer
            t_scores = scores_from_hits(scorer["bias"], scorer["features"], traffic)
            t_by_threshold |= t_scores >= scorer["threshold"]
    sources = np.array([r.source for r in rows])
    report = []
    for index, keyword in enumerate(keywords):
        hits = matrix[index]
        lone = hits & (cover == 1) & ~by_threshold
        fixes, breaks = lone & ~labels.needed, lone & labels.needed  # if it were removed
        precision = weighted_proportion(zip(labels.weight[hits], labels.needed[hits], strict=True))
        entry: dict[str, Any] = {
            "keyword": keyword,
            "hits": {
                s: {
                    "inputs": int((hits & (sources == s)).sum()),
                    "requests": int(labels.weight[hits & (sources == s)].sum()),
                }
                for s in selectors.SOURCES
            },
            "precision": precision.as_dict(),
            "removal_fixes": {
                "inputs": int(fixes.sum()),
                "requests": int(labels.weight[fixes].sum()),
            },
            "removal_breaks": {
                "inputs": int(breaks.sum()),
                "requests": int(labels.weight[breaks].sum()),
            },
            "traffic_share": None,
            "traffic_lone_share": None,
        }
        if traffic is not None:
            t_hits = np.zeros(traffic.size, dtype=bool)
            t_hits[traffic.hits[keyword]] = True
            entry["traffic_share"] = float(t_hits.mean())
            entry["traffic_lone_share"] = float((t_hits & (tcover == 1) & ~t_by_threshold).mean())
        harmful = precision.high is not None and precision.high < 0.5
        entry["propose_removal"] = bool(
            harmful
            and entry["removal_fixes"]["inputs"] - entry["removal_breaks"]["inputs"] >= MIN_GAIN
        )
        report.append(entry)
    report.sort(
        key=lambda e: (not e["propose_removal"], e["precision"]["value"] or 0, e["keyword"])
    )
    return {
        "version": version.name,
        "labels": summary["counts"],
        "traffic_requests": traffic.size if traffic is not None else 0,
        "traffic_period": [since.isoformat(), now.isoformat()],
        "keywords": report,
    }
