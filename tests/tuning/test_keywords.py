"""Keyword mining: Korean-aware terms, log-odds scores, the planted term is found."""

from datetime import UTC, datetime, timedelta

import pytest

from labeling.models import Batch, BatchItem, Label, Trace
from tuning.keywords import log_odds_z, mine, score_terms
from tuning.terms import terms

pytestmark_db = pytest.mark.django_db


@pytest.mark.parametrize(
    "text, expected",
    [
        ("교착상태가 생겨요", {"교착상태"}),
        ("교착상태를 어떻게 풀지", {"교착상태"}),
        ("교착상태에서 빠져나오려면", {"교착상태"}),
        ("스레드교착상태", {"교착상태"}),  # no space: n-grams still hold the noun
        ("Why do deadlocks happen?", {"deadlocks", "deadlock"}),
        ("race condition here", {"race condition", "race", "condition"}),
    ],
)
def test_terms_find_nouns_under_korean_particles_and_english_plurals(text, expected):
    assert expected <= terms(text)


def test_code_blocks_and_stopwords_are_not_terms():
    found = terms("What is this?\n```python\nsecret_function_name()\n```")
    assert "secret_function_name" not in found and "what" not in found


def test_log_odds_prefers_a_term_frequent_in_one_corpus_only():
    distinctive = log_odds_z(20, 200, 1, 1000, 0.5, 500)
    common = log_odds_z(20, 200, 100, 1000, 0.5, 500)
    assert distinctive > 3 and distinctive > common


def test_a_term_seen_once_is_not_a_candidate():
    scored = score_terms([{"once", "twice"}, {"twice"}], [{"other"}], [{"once", "twice", "other"}])
    assert [term for term, *_ in scored] == ["twice"]


PLANTED = [
    # strong needed, no v7 keyword, short: v7 routes them weak (false negatives)
    ("DB 교착상태가 자꾸 생겨요 원인이 뭘까요", "strong_needed"),
    ("교착상태를 어떻게 해결하죠? 트랜잭션 두 개가 서로 기다려요", "strong_needed"),
    ("서비스에서 교착상태에서 멈춰요", "strong_needed"),
    ("why do my workers deadlock under load", "strong_needed"),
    ("two threads deadlock on the same mutex, what now", "strong_needed"),
    ("교착상태 때문에 배포가 막혔어요", "strong_needed"),
    # weak sufficient
    ("리스트 정렬 방법 알려줘", "weak_sufficient"),
    ("파이썬에서 문자열 뒤집기", "weak_sufficient"),
    ("상태 코드 200이 뭐예요", "weak_sufficient"),
    ("git 상태 확인 명령어", "weak_sufficient"),
    ("how do I reverse a list", "weak_sufficient"),
    ("what does this error message mean", "weak_sufficient"),
    ("서비스 재시작 명령어가 뭐예요", "weak_sufficient"),
]


@pytest.fixture
def planted(db, v7, reviewer):
    now = datetime(2026, 11, 10, tzinfo=UTC)
    batch = Batch.objects.create(
        name="fn", kind="fn", strategy={}, seed=1, period_start=now - timedelta(days=1),
        period_end=now, population=len(PLANTED),
    )  # fmt: skip
    for index, (text, label) in enumerate(PLANTED):
        trace = Trace.objects.create(
            langfuse_id=f"planted-{index}", started_at=now - timedelta(hours=index + 1),
            messages=[{"role": "user", "content": text}], input_text=text,
            input_hash=f"h{index}", char_count=len(text), turn_count=1, tier="weak",
            classifier_version="v7",
        )  # fmt: skip
        item = BatchItem.objects.create(batch=batch, trace=trace, position=index + 1)
        Label.objects.create(item=item, reviewer=reviewer, value=label)
    return now - timedelta(days=1), now


@pytest.mark.django_db
def test_mining_finds_the_planted_korean_and_english_terms(planted, v7):
    result = mine(v7, *planted, limit=10)
    found = {c["term"]: c for c in result["candidates"]}
    top = [c["term"] for c in result["candidates"][:3]]
    assert "교착상태" in top and "deadlock" in found
    korean = found["교착상태"]
    assert korean["fn_fixed"] == 4 and korean["fp_added"] == 0 and korean["support"] == 4
    # Every request here is weak, 4 of 13 contain the term: SLM usage would drop 4/13.
    assert korean["slm_usage_change"] == pytest.approx(-4 / 13)
    assert "상태" not in top  # common in weak-sufficient requests too
    assert result["false_negatives"] == 6
