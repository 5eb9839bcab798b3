"""Keyword candidate terms: prose words only, never pasted code or Korean grammar."""

import subprocess
import sys
import unicodedata

import pytest

from tuning.terms import RESERVED_WORDS, STOPWORDS_EN, prose, terms, terms_many

COUNTER_PY = """import threading

class Counter:
    def __init__(self):
        self.value = 0
        self.lock = threading.Lock()

    def incr(self, items):
        current = self.value
        with self.lock:
            self.value = current + len(items)

for t in threads:
    t.start()
print(counter.value)  # expected 80000, prints less"""

HANDLER_GO = """func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
    s.mu.Lock()
    sess, ok := s.sessions[r.Header.Get("X-Session")]
    if !ok {
        http.Error(w, "no session", 401)
        return
    }
    s.mu.Unlock()
    json.NewEncoder(w).Encode(sess)
}"""

REPORT_SQL = """SELECT u.id, u.email,
       (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) AS order_count
FROM users u
WHERE u.created_at > now() - interval '90 days'
ORDER BY paid DESC NULLS LAST
LIMIT 100;"""

TRACEBACK = """Traceback (most recent call last):
  File "/app/worker/tasks.py", line 88, in sync_orders
    for row in client.fetch(page=page):
  File "/usr/local/lib/python3.11/site-packages/requests/sessions.py", line 602, in get
    return self.request("GET", url, **kwargs)
requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='shop.internal', port=443): Read
timed out. (read timeout=5)"""

JAVA_TRACE = """Exception in thread "main" java.lang.IllegalStateException: boom
\tat com.acme.App.run(App.java:42)
\tat com.acme.App.main(App.java:10)"""


@pytest.mark.parametrize(
    "text, code_words, prose_terms",
    [
        pytest.param(
            f"멀티스레드에서 카운터 값이 기대보다 작게 나와요. 원인이 뭘까요?\n{COUNTER_PY}",
            {"def", "self", "items", "threading", "incr", "current", "threads", "prints"},
            {"멀티스레드", "카운터", "원인"},
            id="python",
        ),
        pytest.param(
            "Write a docstring for this function\ndef total(items):\n"
            "    return sum(i['price'] for i in items)",
            {"def", "return", "total", "items", "price", "sum"},
            {"docstring", "write"},
            id="python-short",
        ),
        pytest.param(
            f"Why could this deadlock under load?\n{HANDLER_GO}",
            {"func", "server", "handle", "session", "sessions", "http", "json", "unlock"},
            {"deadlock", "load"},
            id="go",
        ),
        pytest.param(
            f"이 쿼리 성능 최적화 방법 알려줘\n{REPORT_SQL}",
            {"orders", "users", "order_count", "paid", "nulls", "interval", "days", "limit"},
            {"쿼리", "성능", "방법"},
            id="sql",
        ),
        pytest.param(
            "SELECT name, COUNT(*) FROM orders GROUP BY name;\nwhy is this query slow?",
            {"name", "orders", "count"},
            {"query", "slow"},
            id="sql-one-line",
        ),
        pytest.param(
            "Give me a one-line bash command\nfind . -name '*.py' | xargs wc -l",
            {"find", "name", "xargs", "py"},
            {"bash command"},
            id="bash-pipe",
        ),
        pytest.param(
            "for f in *.log; do gzip $f; done\nthis loop skips some files, why?",
            {"gzip", "log", "done"},
            {"skips", "files"},
            id="bash-loop",
        ),
        pytest.param(
            "What does this line do?\nconst ids = users.map(u => u.id).filter(Boolean);",
            {"const", "ids", "users", "map", "filter", "boolean"},
            {"line"},
            id="javascript",
        ),
        pytest.param(
            f"Django async task에서 가끔 timeout 나는데 root cause 찾아줘\n{TRACEBACK}",
            {"sync_orders", "client", "row", "page", "url", "kwargs", "requests", "timed"},
            {"django", "root cause", "timeout"},
            id="python-traceback",
        ),
        pytest.param(
            f"{JAVA_TRACE}\nWhat causes this?",
            {"exception", "thread", "illegalstateexception", "acme", "boom"},
            {"causes"},
            id="java-trace",
        ),
        pytest.param(
            "goroutine 1 [running]:\nmain.main()\n\t/app/main.go:12 +0x1d\n고루틴 덤프 해석해줘",
            {"goroutine", "running", "main", "main.go"},
            {"고루틴", "덤프", "해석"},
            id="go-panic",
        ),
    ],
)
def test_unfenced_code_gives_no_terms_while_the_prose_around_it_does(text, code_words, prose_terms):
    found = terms(text)
    assert not code_words & found
    assert prose_terms <= found


@pytest.mark.parametrize(
    "text, kept, dropped",
    [
        ("What is this?\n```python\nsecret_function_name()\n```", "What is this?", "secret"),
        ("Look:\n~~~\nmystery_token = 1\n~~~\nThat is all.", "That is all.", "mystery"),
        ("Unclosed fence follows\n```\nleftover words stay out", "Unclosed", "leftover"),
        ("`git commit --amend` 를 쓰세요", "를 쓰세요", "git"),
        ("Use `loadDashboard()` for the dashboard", "dashboard", "loaddashboard"),
    ],
)
def test_fenced_blocks_and_inline_code_spans_are_dropped(text, kept, dropped):
    assert kept in prose(text)
    assert not any(dropped in term for term in terms(text))


@pytest.mark.parametrize(
    "text, nouns",
    [
        ("이 코드 리팩터링 해줘", {"코드", "리팩터링"}),
        ("멀티스레드에서 카운터 값이 기대보다 작게 나와요", {"멀티스레드", "카운터", "기대"}),
        ("가끔 멈추는데 왜 그런지 모르겠어요", set()),
        ("리스트를 역순으로 정렬하는 방법 알려줘", {"리스트", "역순", "정렬", "방법"}),
        ("배포가 완료되었습니다. 로그에서 에러를 확인했습니다", {"배포", "완료", "로그", "에러"}),
    ],
)
def test_korean_nouns_are_terms_and_particles_and_endings_never_are(text, nouns):
    found = terms(text)
    assert nouns <= found
    grammar = {"아줘", "는데", "해줘", "에서", "습니다", "으로", "보다", "하는", "어요", "겠어요"}
    assert not grammar & found
    assert not any(len(term) == 1 for term in found)


def test_korean_words_come_whole_not_as_character_fragments():
    found = terms("멀티스레드에서 카운터 값이 기대보다 작게 나와요")
    assert not {"멀티", "스레", "레드", "드에", "운터", "나와"} & found


def test_nouns_written_together_also_give_the_compound():
    found = terms("멀티스레드환경에서 교착상태가 생겨요")
    assert {"멀티스레드환경", "멀티스레드", "환경", "교착상태"} <= found


@pytest.mark.parametrize(
    "text, excluded, included",
    [
        (
            "How do I find the name of the function that returns a value?",
            {"how", "find", "name", "the", "function", "that"},
            {"returns", "value"},
        ),
        (
            "Should I use a select statement or a switch in this case?",
            {"select", "switch", "case", "this", "should"},
            {"statement"},
        ),
        (
            "It wasn't fast and I don't know why",
            {"wasn", "don", "and", "why"},
            {"fast", "know"},
        ),
    ],
)
def test_english_stop_words_and_reserved_words_are_not_terms(text, excluded, included):
    found = terms(text)
    assert not excluded & found
    assert included <= found


def test_the_word_lists_are_the_published_ones():
    assert {"find", "name", "fire", "get"} <= STOPWORDS_EN and len(STOPWORDS_EN) == 318
    assert {"def", "return", "func", "select", "esac", "fn", "val", "typedef"} <= RESERVED_WORDS
    assert all(word == word.lower() for word in RESERVED_WORDS)


def test_english_bigrams_need_exactly_one_space_between_kept_words():
    found = terms("race condition here, and a deadlock. Another  race")
    assert "race condition" in found
    assert "deadlock another" not in found and "another race" not in found


@pytest.mark.parametrize(
    "text, english, korean",
    [
        (
            "React에서 env variable 읽는 best practice가 뭐야?",
            {"react", "env variable", "best practice"},
            set(),
        ),
        (
            "k8s에서 pod가 OOMKilled 되는데 heap dump 분석 순서 알려줘",
            {"k8s", "pod", "oomkilled", "heap dump"},
            {"분석", "순서"},
        ),
        (
            "이 TypeScript code의 performance 병목 분석해줘",
            {"typescript", "performance"},
            {"병목", "분석"},
        ),
    ],
)
def test_mixed_language_lines_keep_the_words_of_both_languages(text, english, korean):
    assert english | korean <= terms(text)


MANY = [
    "멀티스레드환경에서 교착상태가 생겨요",
    f"이 Go 서비스가 가끔 멈추는데 왜 그런지 모르겠어요\n{HANDLER_GO}",
    "TypeError: 'NoneType' object is not subscriptable 이 에러는 무슨 뜻이야?",
    "What does 'KeyError: 'user_id'' mean?",
    "best`x`practice and race`y`condition",  # dropped spans must not join words
    "Plan a zero-downtime migration from MySQL 5.7 to PostgreSQL 16",
    "İstanbul ΣΟΦΙΑΣ deploy 배포",  # lower() changes length / final sigma
    "",
    f"Django async task에서 가끔 timeout 나는데 root cause 찾아줘\n{TRACEBACK}",
]


@pytest.mark.parametrize("text", MANY)
def test_every_term_is_a_substring_of_the_normalised_text(text):
    normalised = unicodedata.normalize("NFC", text).lower()
    nfd = unicodedata.normalize("NFD", text)
    for term in terms(text) | terms(nfd):
        assert term in normalised


@pytest.mark.parametrize(
    "text",
    ["멀티스레드환경에서 교착상태가 생겨요", "결제 웹훅이 중복 처리되는 문제가 있어요", MANY[1]],
)
def test_decomposed_hangul_gives_the_same_terms_as_composed(text):
    nfd = unicodedata.normalize("NFD", text)
    assert nfd != text
    assert terms(nfd) == terms(text) != set()


def test_many_texts_at_once_give_what_each_gives_alone():
    assert terms_many(MANY) == [terms(text) for text in MANY]
    assert terms_many([]) == []


@pytest.mark.parametrize(
    "text",
    [
        "How do I reverse a list in Python?",
        "What's the Kotlin equivalent of Python's enumerate?",
        "Plan a zero-downtime migration from MySQL 5.7 to PostgreSQL 16",
        "Design a multi-tenant rate limiter for our API with Redis",
        "let me know if the race condition is fixed",
        "Why is it slow?",
        "결제 웹훅이 중복 처리되는 문제가 있어요. 멱등성을 보장하는 방법?",
        "분산 락 없이 재고 차감을 안전하게 하려면 어떻게 해야 하나요?",
        "k8s에서 pod가 OOMKilled 되는데 heap dump 분석 순서 알려줘",
        "C++ 템플릿 메타프로그래밍 질문",
    ],
)
def test_prose_keeps_a_plain_question_word_for_word(text):
    assert prose(text).split() == text.split()


@pytest.mark.parametrize(
    "text, kept, dropped",
    [
        ("What does 'KeyError: 'user_id'' mean?", "What does", "KeyError"),
        ("That fails with: TypeError: 'NoneType' object", "That fails with:", "NoneType"),
        ("TypeError: 'NoneType' object is not subscriptable 이 에러는 뭐야?", "에러는", "object"),
        ("pip install -r requirements.txt 하면 에러가 나요", "하면 에러가 나요", "pip"),
        ("Why does counter.incr() lose updates under load?", "lose updates", "incr"),
    ],
)
def test_code_inside_a_prose_line_goes_and_the_sentence_stays(text, kept, dropped):
    result = prose(text)
    assert kept in result and dropped not in result


def test_importing_the_module_does_not_load_the_analyser():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, tuning.terms; print('kiwipiepy' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "False"
