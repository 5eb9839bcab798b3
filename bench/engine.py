"""Engine speed vs a naive per-keyword loop, on 500-character mixed Korean/English prompts.

    .venv/bin/python -m bench.engine [--calls 20000] [--repeats 7] [--no-scorers]

Prints classifications per second and the median time per call for the engine
(NFC normalization, content parts, Aho-Corasick scan, all reasons) and for the spec's
naive rule (join, lower, ``any(k in text for k in keywords)``), with the 17 v7 keywords
and with 500 keywords. Prompts carry no keyword, the common weak-tier case, in which
the naive loop must try every keyword.

Then scorer versions of 1,000 and 4,000 features, trained as a scorer proposal trains
them (``tuning.scorer_training``, the cap fixed) on 2,000 labeled requests of the
stand-in's traffic: the median of single decisions (tier, reasons and score; the pod's path
when it does not trace) and of decisions that also name their top five features (what the
API and a traced pod ask for), against v7's keyword rule on the same prompts.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from routing.baseline import V7_KEYWORDS
from routing.engine import build_classifier

FRAGMENTS = [
    "이 함수가 왜 느린지 설명해 주세요. ",
    "Here is the traceback I get when I run the tests: ",
    "리스트를 정렬하는 코드를 작성해줘. ",
    "def load(path):\n    with open(path) as f:\n        return json.load(f)\n",
    "변수 이름을 더 읽기 쉽게 바꿔주세요. ",
    "Can you add type hints to this function? ",
    "주석을 한국어로 달아주세요. ",
    "for item in items:\n    total += item.price * item.qty\n",
    "그리고 테스트 코드도 같이 부탁해요. ",
    "What does this regular expression match? ",
]


def prompts(count: int, length: int, rng: random.Random) -> list[list[dict]]:
    result = []
    for _ in range(count):
        text = ""
        while len(text) < length:
            text += rng.choice(FRAGMENTS)
        result.append([{"role": "user", "content": text[:length]}])
    return result


def many_keywords(count: int, rng: random.Random) -> list[str]:
    """Plausible keywords that do not occur in the prompts above."""
    syllables = "가나다라마바사아자차카타파하거너더러머버서어저처커터퍼허"
    letters = "bcdfghjklmnpqrstvwxz"
    words = {k for k, _, _ in V7_KEYWORDS}
    while len(words) < count:
        if rng.random() < 0.4:
            words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))) + "화")
        else:
            words.add("q" + "".join(rng.choice(letters) for _ in range(rng.randint(5, 10))))
    return sorted(words)


def naive_classifier(keywords, token_threshold=500, turn_threshold=5):
    keywords = list(keywords)

    def classify(messages):
        content = " ".join(m.get("content", "") for m in messages if m.get("content"))
        lower = content.lower()
        if any(k in lower for k in keywords):
            return "strong"
        if len(content) > token_threshold:
            return "strong"
        if len(messages) > turn_threshold:
            return "strong"
        return "weak"

    return classify


def measure(fn, inputs, repeats: int) -> tuple[float, float]:
    """(calls per second, median µs per call) over ``repeats`` passes."""
    per_call = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        for messages in inputs:
            fn(messages)
        per_call.append((time.perf_counter_ns() - start) / len(inputs) / 1000)
    median = statistics.median(per_call)
    return 1e6 / median, median


def trained_scorer(cap: int, requests: int = 2000, seed: int = 1) -> dict:
    """A scorer of ``cap`` features trained on the stand-in's labeled traffic."""
    import json
    import os

    import django
    import numpy as np

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cascade_admin.settings")
    django.setup()
    from labeling.standin.traffic import generate_traffic
    from routing.engine import conversation_text
    from tuning import scorer_training as training
    from tuning.search import Labels

    traffic = generate_traffic(seed=seed, days=2, per_day=requests // 2, malformed_rate=0)
    texts, turns, needed = [], [], []
    for root in traffic.roots:
        messages = json.loads(root["input"])
        text = conversation_text(messages)
        if text and root["traceId"] in traffic.truth:
            texts.append(text.lower())
            turns.append(len(messages))
            needed.append(traffic.truth[root["traceId"]] == "strong_needed")
    n = len(texts)
    labels = Labels(
        texts=texts,
        chars=np.array([len(t) for t in texts]),
        turns=np.array(turns),
        forced=np.zeros(n, dtype=bool),
        needed=np.array(needed),
        weight=np.ones(n),
        group=np.arange(n),
    )
    corpus = training.Corpus.of(texts)
    model = training.fit_capped(corpus, labels, np.arange(n), (cap,), 1.0, 1.0)[cap]
    return training.scorer_config(model, 0.0, corpus)


def median_decision(fn, inputs) -> float:
    """Median µs of single calls (each timed on its own)."""
    clock = time.perf_counter_ns
    times = []
    for messages in inputs:
        start = clock()
        fn(messages)
        times.append(clock() - start)
    return statistics.median(times) / 1000


def scorers(inputs, repeats: int) -> None:
    v7 = {"strong_keywords": [k for k, _, _ in V7_KEYWORDS], "token_threshold": 1000,
          "turn_threshold": 8}  # fmt: skip
    print(f"\n{'features':>8} {'version':<22} {'median µs/decision':>19} {'with top 5':>11}")
    rows = [("v7 keywords", v7, 0)]
    for cap in (1000, 4000):
        scorer = trained_scorer(cap)
        rows.append((f"scorer {len(scorer['features'])} features", {**v7, "scorer": scorer}, cap))
    for name, config, cap in rows:
        engine = build_classifier(config)

        def bare(messages, engine=engine):
            return engine.classify(messages, explain=False)

        best = min(median_decision(bare, inputs) for _ in range(repeats))
        explained = min(median_decision(engine.classify, inputs) for _ in range(repeats))
        print(f"{cap or '-':>8} {name:<22} {best:>19.2f} {explained:>11.2f}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-scorers", action="store_true")
    args = parser.parse_args(argv)
    rng = random.Random(42)
    inputs = prompts(args.calls, 500, rng)
    print(f"{args.calls} prompts of 500 characters, {args.repeats} passes, median per call")
    print(f"{'keywords':>8} {'implementation':<16} {'calls/s':>12} {'µs/call':>9}")
    for count in (17, 500):
        keywords = [k for k, _, _ in V7_KEYWORDS] if count == 17 else many_keywords(count, rng)
        engine = build_classifier(
            {"strong_keywords": keywords, "token_threshold": 500, "turn_threshold": 5}
        )
        naive = naive_classifier(keywords)
        for messages in inputs[:200]:  # same answers before we time anything
            assert engine.classify(messages).tier == naive(messages)
        results = {
            "engine": measure(engine.classify, inputs, args.repeats),
            "naive loop": measure(naive, inputs, args.repeats),
        }
        for name, (rate, micros) in results.items():
            print(f"{count:>8} {name:<16} {rate:>12,.0f} {micros:>9.2f}")
        speedup = results["naive loop"][1] / results["engine"][1]
        print(f"{count:>8} {'engine speed-up':<16} {speedup:>11.2f}x")
    if not args.no_scorers:
        scorers(inputs[:5000], min(args.repeats, 3))


if __name__ == "__main__":
    main()
