"""A seeded generator of routed coding-assistant traffic, shaped like what pods send.

Every request is classified by the real engine (``routing.engine``) with the v7 config,
so tags and metadata are exactly what a pod would attach. Around it: users with their
own language habits and clients, multi-turn sessions, KST office-hour load, per-tier cost,
latency and TTFT, user feedback (worse for weak answers to hard questions), quick retries
of the same question after a weak answer, and a few malformed traces.

``generate_traffic`` is deterministic for a given seed, volume and ``end``. The ground
truth (did the request need the strong tier?) is returned beside the data, never inside
it, so demos and tests can simulate reviewers. ``wordings="test"`` asks the same tasks in
the disjoint wordings of ``prompts.TEST_WORDINGS``, for measuring whether rules learned
from the default ("train") traffic generalise to phrasings they never saw.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from routing.engine import build_classifier

from . import prompts
from .store import PROJECT_ID, iso

V7_CONFIG = {
    "strong_keywords": [
        "리팩터", "아키텍처", "설계", "분석", "최적화", "디버그", "마이그레이션",
        "refactor", "architect", "design", "analyze", "optimize", "debug", "migration",
        "complex", "performance", "security",
    ],
    "token_threshold": 500,
    "turn_threshold": 5,
}  # fmt: skip
CLASSIFIER_VERSION = "v7"
TRACE_NAME = "llm_request"
FEEDBACK_SCORE_NAME = "user_feedback"  # NUMERIC 1-5 from the web client; <= 2 is thumbs-down
THUMBS_SCORE_NAME = "thumbs"  # BOOLEAN from IDE plugins; false is thumbs-down
MODELS = {"weak": "qwen3-4b", "strong": "glm-5"}
# USD per token (input, output): strong lands near v7's $5.80 per 1k requests overall.
PRICES = {"weak": (1.0e-7, 4.0e-7), "strong": (4.0e-6, 2.0e-5)}
TOKENS_PER_SECOND = {"weak": 90.0, "strong": 35.0}
TTFT_MEDIAN = {"weak": 0.55, "strong": 2.4}
KST = timedelta(hours=9)
# Relative load per KST hour (0-23): office hours, a lunch dip, a little night work.
HOURLY_LOAD = (
    1, 1, 1, 1, 1, 1, 2, 4, 8, 14, 16, 15, 8, 13, 16, 16, 15, 12, 8, 6, 5, 4, 3, 2,
)  # fmt: skip
CLIENTS = ("web", "cline", "continue", "aider")


@dataclass(frozen=True)
class _Wordings:
    """One set of phrasings: templates parallel to ``prompts.TEMPLATES``, follow-ups and
    retry prefixes parallel to theirs, so the same random draws pick the same tasks."""

    templates: tuple[prompts.Template, ...]
    follow_ups: dict[str, tuple[tuple[str, str], ...]]
    retry_prefixes: dict[str, tuple[str, ...]]


WORDINGS = {
    "train": _Wordings(prompts.TEMPLATES, prompts.FOLLOW_UPS, prompts.RETRY_PREFIXES),
    "test": _Wordings(prompts.TEST_WORDINGS, prompts.TEST_FOLLOW_UPS, prompts.TEST_RETRY_PREFIXES),
}


@dataclass
class Traffic:
    """Generated data in the API's wire format (``observations``, ``scores``), plus what
    the generator knows and the data doesn't say: what a reviewer would decide (``truth``),
    which traces were broken and how, which traces retry which, and each trace's task.

    ``families`` maps every trace id to the index into ``prompts.TEMPLATES`` (equally
    ``prompts.TEST_WORDINGS``) of the task it asks; follow-ups and retries keep the family
    of the request they continue, so benchmarks can group by task.
    """

    observations: list[dict[str, Any]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    truth: dict[str, str] = field(default_factory=dict)  # trace id -> label value
    malformed: dict[str, str] = field(default_factory=dict)  # trace id -> how
    retries: dict[str, str] = field(default_factory=dict)  # retry trace id -> first trace id
    families: dict[str, int] = field(default_factory=dict)  # trace id -> index into TEMPLATES

    @property
    def roots(self) -> list[dict[str, Any]]:
        return [o for o in self.observations if o.get("isRootObservation")]


@dataclass
class _User:
    id: str
    lang_weights: tuple[float, float, float]  # ko, en, mixed
    client: str
    activity: float
    system_prompt: str | None


@dataclass
class _Request:
    user: _User
    at: datetime
    session_id: str
    messages: list[dict[str, Any]]
    lang: str
    hard: bool
    answer: str
    family: int  # index into prompts.TEMPLATES of the task this conversation is about
    retry_of: str | None = None


def _hex(rng: random.Random, bits: int) -> str:
    return f"{rng.getrandbits(bits):0{bits // 4}x}"


def _make_users(rng: random.Random, count: int) -> list[_User]:
    users = []
    for _ in range(count):
        profile = rng.random()
        if profile < 0.55:
            weights = (0.8, 0.05, 0.15)
        elif profile < 0.8:
            weights = (0.05, 0.9, 0.05)
        else:
            weights = (0.35, 0.25, 0.4)
        client = rng.choices(CLIENTS, weights=(40, 30, 20, 10))[0]
        system = None if rng.random() < 0.3 else rng.choice(prompts.SYSTEM_PROMPTS)
        users.append(
            _User(
                id=f"user-{_hex(rng, 24)}",
                lang_weights=weights,
                client=client,
                activity=rng.paretovariate(1.3),  # a few heavy users, many light ones
                system_prompt=system,
            )
        )
    return users


def fill_template(rng: random.Random, text: str) -> str:
    """A template's slots filled with random code, errors, languages and libraries."""
    return text.format(
        short_code=rng.choice(prompts.SHORT_CODE),
        long_code=rng.choice(list(prompts.LONG_CODE.values())),
        counter_code=prompts.LONG_CODE["counter"],
        dashboard_code=prompts.LONG_CODE["dashboard"],
        handler_code=prompts.LONG_CODE["handler"],
        sql_code=prompts.LONG_CODE["sql"],
        stack=prompts.STACK_TRACE,
        lang_name=rng.choice(prompts.LANG_NAMES),
        lib=rng.choice(prompts.LIBS),
        thing=rng.choice(prompts.THINGS),
        error=rng.choice(prompts.ERRORS),
    )


def _pick_family(rng: random.Random, lang: str) -> int:
    """The index of a task in ``prompts.TEMPLATES``; every wording set is parallel to it."""
    # About a third of requests need the strong tier.
    hard = rng.random() < 0.3
    templates = prompts.TEMPLATES
    options = [i for i, t in enumerate(templates) if t.lang == lang and t.hard == hard]
    return rng.choices(options, weights=[templates[i].weight for i in options])[0]


def _answer(rng: random.Random, request: _Request, tier: str) -> tuple[str, bool]:
    """The answer text and whether it was bad (a weak model on a hard question, usually)."""
    base = "ko" if request.lang in ("ko", "mixed") else "en"
    if request.hard and tier == "weak" and rng.random() < 0.7:
        return rng.choice(prompts.WEAK_SHALLOW[base]), True
    return request.answer, rng.random() < 0.03


def _start_time(rng: random.Random, day_start: datetime) -> datetime:
    hour = rng.choices(range(24), weights=HOURLY_LOAD)[0]
    seconds = rng.uniform(0, 3600)
    return day_start + timedelta(hours=hour, seconds=seconds)


def _root_observation(
    rng: random.Random, request: _Request, classifier, trace_id: str
) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
    decision = classifier.classify(request.messages)
    tier = decision.tier
    output, bad = _answer(rng, request, tier)
    input_tokens = max(8, int(decision.char_count / (2.2 if request.lang != "en" else 3.8)))
    output_tokens = max(12, int(rng.lognormvariate(math.log(260 if tier == "weak" else 650), 0.5)))
    ttft = rng.lognormvariate(math.log(TTFT_MEDIAN[tier]), 0.45)
    latency = ttft + output_tokens / (TOKENS_PER_SECOND[tier] * rng.uniform(0.8, 1.2))
    price_in, price_out = PRICES[tier]
    cost_in, cost_out = input_tokens * price_in, output_tokens * price_out
    start = request.at
    end = start + timedelta(seconds=latency)
    tags = [
        f"tier:{tier}",
        f"keyword_match:{'true' if decision.matched_keywords else 'false'}",
        f"turn_count:{decision.turn_count}",
        f"classifier_version:{CLASSIFIER_VERSION}",
    ]
    # Metadata ingested through OTel comes back as strings (arrays JSON-encoded).
    metadata = {
        "classifier_version": CLASSIFIER_VERSION,
        "content_length": str(decision.char_count),
        "strong_keywords_found": json.dumps(list(decision.matched_keywords), ensure_ascii=False),
        "turn_count": str(decision.turn_count),
        "reasons": json.dumps(list(decision.reasons)),
        "client": request.user.client,
    }
    obs_id = _hex(rng, 64)
    root = {
        "id": obs_id,
        "traceId": trace_id,
        "startTime": iso(start),
        "endTime": iso(end),
        "projectId": PROJECT_ID,
        "parentObservationId": None,
        "type": "GENERATION",
        "name": TRACE_NAME,
        "level": "DEFAULT",
        "statusMessage": None,
        "version": CLASSIFIER_VERSION,
        "environment": "production",
        "bookmarked": False,
        "public": False,
        "userId": request.user.id,
        "sessionId": request.session_id,
        "isRootObservation": True,
        "completionStartTime": iso(start + timedelta(seconds=ttft)),
        "createdAt": iso(end + timedelta(seconds=2)),
        "updatedAt": iso(end + timedelta(seconds=2)),
        "input": json.dumps(request.messages, ensure_ascii=False),
        "output": json.dumps({"role": "assistant", "content": output}, ensure_ascii=False),
        "metadata": metadata,
        "model": MODELS[tier],
        "modelParameters": {"temperature": 0.2, "stream": True},
        "usageDetails": {
            "input": input_tokens,
            "output": output_tokens,
            "total": input_tokens + output_tokens,
        },
        "costDetails": {"input": cost_in, "output": cost_out, "total": cost_in + cost_out},
        "totalCost": cost_in + cost_out,
        "latency": round(latency, 3),
        "timeToFirstToken": round(ttft, 3),
        "tags": tags,
        "release": None,
        "traceName": TRACE_NAME,
    }
    child = {
        "id": _hex(rng, 64),
        "traceId": trace_id,
        "startTime": iso(start),
        "endTime": iso(start + timedelta(milliseconds=1)),
        "projectId": PROJECT_ID,
        "parentObservationId": obs_id,
        "type": "SPAN",
        "name": "classify",
        "level": "DEFAULT",
        "environment": "production",
        "userId": request.user.id,
        "sessionId": request.session_id,
        "isRootObservation": False,
        "input": None,
        "output": json.dumps(decision.as_dict(), ensure_ascii=False),
        "metadata": metadata,
        "tags": tags,
        "traceName": TRACE_NAME,
        "latency": 0.001,
    }
    return root, child, tier, bad


def _feedback(
    rng: random.Random, request: _Request, trace_id: str, at: datetime, tier: str, bad: bool
) -> dict[str, Any] | None:
    # Unhappy users speak up more often than happy ones.
    if rng.random() > (0.45 if bad else 0.12):
        return None
    negative = rng.random() < (0.8 if bad else 0.05)
    stamp = iso(at + timedelta(seconds=rng.uniform(5, 240)))
    base = "ko" if request.lang in ("ko", "mixed") else "en"
    comment = None
    if rng.random() < 0.3:
        comments = prompts.FEEDBACK_COMMENTS[base]
        comment = rng.choice(comments[:-1]) if negative else comments[-1]
    score: dict[str, Any] = {
        "id": f"{_hex(rng, 32)}",
        "projectId": PROJECT_ID,
        "timestamp": stamp,
        "environment": "production",
        "createdAt": stamp,
        "updatedAt": stamp,
        "comment": comment,
        "configId": None,
        "metadata": {"client": request.user.client},
        "authorUserId": None,
        "queueId": None,
        "source": "API",
        "subject": {"kind": "trace", "id": trace_id},
    }
    if request.user.client == "web":
        value = rng.choice((1, 2)) if negative else rng.choices((3, 4, 5), weights=(1, 3, 5))[0]
        score.update(name=FEEDBACK_SCORE_NAME, dataType="NUMERIC", value=float(value))
    else:
        score.update(name=THUMBS_SCORE_NAME, dataType="BOOLEAN", value=not negative)
    return score


def _truth(rng: random.Random, hard: bool) -> str:
    # Reviewers are not oracles: a few borderline requests go the other way.
    needed = hard if rng.random() > 0.02 else not hard
    return "strong_needed" if needed else "weak_sufficient"


def _break(rng: random.Random, root: dict[str, Any]) -> str:
    how = rng.choice(("missing_input", "unparsable_input", "unknown_shape"))
    if how == "missing_input":
        root["input"] = None
    elif how == "unparsable_input":
        root["input"] = root["input"][: max(1, len(root["input"]) // 2)]  # cut mid-JSON
    else:
        root["input"] = json.dumps({"prompt": "summarize the attached file", "file_id": 17})
    return how


def generate_traffic(
    seed: int = 0,
    days: int = 7,
    per_day: int = 3000,
    end: datetime | None = None,
    *,
    malformed_rate: float = 0.004,
    retry_rate: float = 0.35,
    config: dict[str, Any] | None = None,
    wordings: str = "train",
) -> Traffic:
    """``days`` of traffic ending at ``end`` (default: now), about ``per_day`` requests a day.

    Retries come on top of ``per_day``. Each trace has a root GENERATION observation and a
    non-root ``classify`` SPAN, so a reader that forgets the root filter sees double.

    ``wordings`` is "train" (``prompts.TEMPLATES``, what the demo and tuning see) or
    "test" (``prompts.TEST_WORDINGS`` and the test follow-ups and retry prefixes): the
    same tasks and the same random draws, phrased differently. Which tier v7 picks depends
    on the wording, and later draws depend on the tier, so the two diverge after the first
    request routed differently; the planned requests' tasks are the same.
    """
    if days < 1 or per_day < 1:
        raise ValueError("days and per_day must be positive")
    if wordings not in WORDINGS:
        raise ValueError(f"wordings must be one of {sorted(WORDINGS)}, got {wordings!r}")
    phrasing = WORDINGS[wordings]
    rng = random.Random(seed)
    classifier = build_classifier(config or V7_CONFIG)
    end = (end or datetime.now(UTC)).astimezone(UTC)
    window_start = end - timedelta(days=days)
    # Whole KST days covering the window (load follows the KST clock), cut to it below.
    first_day = (window_start + KST).replace(hour=0, minute=0, second=0, microsecond=0) - KST
    users = _make_users(rng, max(5, per_day // 8))
    activity = [u.activity for u in users]

    requests: list[_Request] = []
    for day in range(days + 1):
        day_start = first_day + timedelta(days=day)  # KST midnight, in UTC
        weekend = (day_start + KST).weekday() >= 5
        volume = int(per_day * (0.35 if weekend else 1.0) * rng.uniform(0.9, 1.1))
        for _ in range(volume):
            user = rng.choices(users, weights=activity)[0]
            lang = rng.choices(("ko", "en", "mixed"), weights=user.lang_weights)[0]
            family = _pick_family(rng, lang)
            template = phrasing.templates[family]
            messages = []
            if user.system_prompt:
                messages.append({"role": "system", "content": user.system_prompt})
            messages.append({"role": "user", "content": fill_template(rng, template.text)})
            requests.append(
                _Request(
                    user=user,
                    at=_start_time(rng, day_start),
                    session_id=f"sess-{_hex(rng, 48)}",
                    messages=messages,
                    lang=lang,
                    hard=template.hard,
                    answer=template.answer,
                    family=family,
                )
            )
    requests.sort(key=lambda r: r.at)
    requests.extend(_follow_ups(rng, requests, phrasing))
    requests = [r for r in requests if window_start <= r.at < end]

    traffic = Traffic()
    pending: list[_Request] = []
    queue = sorted(requests, key=lambda r: r.at)
    while queue or pending:
        request = _next(queue, pending)
        trace_id = _hex(rng, 128)
        root, child, tier, bad = _root_observation(rng, request, classifier, trace_id)
        traffic.observations.extend((root, child))
        traffic.truth[trace_id] = _truth(rng, request.hard)
        traffic.families[trace_id] = request.family
        if request.retry_of:
            traffic.retries[trace_id] = request.retry_of
        if request.at >= end:
            continue  # a retry past the window: not yet happened
        score = _feedback(rng, request, trace_id, request.at, tier, bad)
        if score is not None:
            traffic.scores.append(score)
        if bad and request.retry_of is None and rng.random() < retry_rate:
            pending.append(_retry(rng, request, trace_id, phrasing))
        if rng.random() < malformed_rate:
            traffic.malformed[trace_id] = _break(rng, root)
    return traffic


def _next(queue: list[_Request], pending: list[_Request]) -> _Request:
    """The earlier of the next planned request and the next retry."""
    pending.sort(key=lambda r: r.at)
    if pending and (not queue or pending[0].at <= queue[0].at):
        return pending.pop(0)
    return queue.pop(0)


def _retry(
    rng: random.Random, request: _Request, first_trace: str, phrasing: _Wordings
) -> _Request:
    """The same user asks the same question again a little later, maybe reworded."""
    messages = [dict(m) for m in request.messages]
    prefix = rng.choice(phrasing.retry_prefixes[request.lang])
    messages[-1]["content"] = prefix + messages[-1]["content"]
    # Mostly within five minutes; some later, so the window matters.
    delay = rng.uniform(15, 290) if rng.random() < 0.85 else rng.uniform(320, 1800)
    return _Request(
        user=request.user,
        at=request.at + timedelta(seconds=delay),
        session_id=request.session_id,
        messages=messages,
        lang=request.lang,
        hard=request.hard,
        answer=request.answer,
        family=request.family,
        retry_of=first_trace,
    )


def _follow_ups(
    rng: random.Random, requests: list[_Request], phrasing: _Wordings
) -> list[_Request]:
    """Continue some conversations: later requests in the same session carry the history,
    so turn counts grow (and cross the turn threshold) as they do in real sessions."""
    extra = []
    for request in requests:
        if rng.random() >= 0.08:
            continue
        history, at, hard = list(request.messages), request.at, request.hard
        answer = request.answer
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
            question, next_answer = rng.choice(phrasing.follow_ups[request.lang])
            history = [
                *history,
                {"role": "assistant", "content": answer},
                {"role": "user", "content": fill_template(rng, question)},
            ]
            answer = fill_template(rng, next_answer)
            at += timedelta(seconds=rng.uniform(40, 900))
            # A follow-up is usually no harder than the question it follows.
            hard = hard and rng.random() < 0.8
            extra.append(
                _Request(
                    user=request.user,
                    at=at,
                    session_id=request.session_id,
                    messages=history,
                    lang=request.lang,
                    hard=hard,
                    answer=answer,
                    family=request.family,
                )
            )
    return extra
