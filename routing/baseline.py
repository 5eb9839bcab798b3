"""The v7 baseline, as the spec reports it: 17 bilingual keywords, 500 characters, 5 messages.

Shared by the seed migration and the tests (a flushed test database loses migrated rows).
"""

from decimal import Decimal

from .engine import canonical_config, normalize_keyword

V7_NAME = "v7"
V7_TOKEN_THRESHOLD = 500
V7_TURN_THRESHOLD = 5

# (keyword, language, rationale); Korean and English pairs share their reason.
_PAIRS = [
    (
        "리팩터",
        "refactor",
        "Restructuring needs the whole codebase in view; the small model loses track past"
        " about 1,000 lines.",
    ),
    (
        "아키텍처",
        "architect",
        "Dependencies across many files call for deeper reasoning than the small model offers.",
    ),
    ("설계", "design", "Design questions weigh trade-offs across a whole system."),
    (
        "분석",
        "analyze",
        "Tracing a root cause benefits from the large model's step-by-step reasoning.",
    ),
    (
        "최적화",
        "optimize",
        "Reasoning about algorithmic complexity is where the models' math ability differs most.",
    ),
    ("디버그", "debug", "Walking back through stack traces needs a long context."),
    (
        "마이그레이션",
        "migration",
        "Mapping API changes between versions needs deep framework knowledge.",
    ),
]
_ENGLISH_ONLY = [
    ("complex", "The user says outright that the task is complex."),
    ("performance", "Profiling and bottleneck hunting need system-level understanding."),
    ("security", "CVE and vulnerability analysis needs security domain knowledge."),
]

V7_KEYWORDS = (
    [(ko, "ko", why) for ko, _, why in _PAIRS]
    + [(en, "en", why) for _, en, why in _PAIRS]
    + [(en, "en", why) for en, why in _ENGLISH_ONLY]
)

V7_REPORTED = {
    "reported_misroute_rate": Decimal("4.20"),
    "reported_slm_usage": Decimal("68.00"),
    "reported_cost_per_1k": Decimal("5.80"),
    "reported_source": "Spec baseline: 14 days of coding-tool traffic (~42k requests, 200 labels)",
}
V7_NOTES = (
    "Production baseline from the tuning guide, measured 2026-03-30 to 2026-04-13 on an internal "
    "coding-tool workload. Lineage: v1 (5 keywords, 1000/10), v3 (10, 750/7), v5 (15, 600/6). "
    "Its reported cost per 1k ($5.80) misses the < $5.00 target."
)


def v7_config() -> dict:
    return canonical_config(
        V7_NAME,
        {
            "strong_keywords": [k for k, _, _ in V7_KEYWORDS],
            "token_threshold": V7_TOKEN_THRESHOLD,
            "turn_threshold": V7_TURN_THRESHOLD,
            "byte_threshold": None,
        },
    )


def ensure_v7(ClassifierVersion, KeywordSet, Keyword, now):
    """Create the frozen v7 unless it exists. Takes model classes so migrations can call it."""
    if ClassifierVersion.objects.filter(name=V7_NAME).exists():
        return ClassifierVersion.objects.get(name=V7_NAME)
    keyword_set = KeywordSet.objects.create(name="v7 keywords")
    Keyword.objects.bulk_create(
        Keyword(
            keyword_set=keyword_set,
            text=text,
            normalized=normalize_keyword(text),
            language=language,
            rationale=why,
            position=i,
        )
        for i, (text, language, why) in enumerate(V7_KEYWORDS)
    )
    keyword_set.frozen = True
    keyword_set.save(update_fields=["frozen"])
    config = v7_config()
    return ClassifierVersion.objects.create(
        name=V7_NAME,
        keyword_set=keyword_set,
        token_threshold=V7_TOKEN_THRESHOLD,
        turn_threshold=V7_TURN_THRESHOLD,
        notes=V7_NOTES,
        status="frozen",
        frozen_at=now,
        config=config,
        config_sha256=config["sha256"],
        **V7_REPORTED,
    )
