# ruff: noqa: E501 - a table of prompts reads best one per line
"""Prompt and answer material for the traffic generator.

Each template knows whether answering it well needs the strong tier (``hard``); the v7
keywords appear where people would really write them, so the classifier is right most of
the time and wrong in the ways production sees: hard questions without a keyword (false
negatives), easy ones that mention "debug" or "design" (false positives), pasted logs
that trip the length rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Template:
    lang: str  # "ko", "en" or "mixed"
    hard: bool
    text: str  # str.format slots: {short_code}, {long_code}, {stack}, {lang_name}, ...
    answer: str  # what a good answer says
    weight: float = 1.0


SYSTEM_PROMPTS = (
    "You are a helpful coding assistant. Answer concisely and show code when useful.",
    "당신은 숙련된 소프트웨어 엔지니어입니다. 간결하게 답하고 필요하면 코드를 보여주세요.",
    "You are an expert pair programmer working inside the user's IDE.",
    "사내 개발자 지원 봇입니다. 보안 정책상 비밀 값은 출력하지 마세요.",
    "Answer in the user's language. Prefer standard library solutions.",
)

LANG_NAMES = ("Python", "TypeScript", "Go", "Java", "Kotlin", "Rust", "SQL", "Bash")
LIBS = ("Django", "FastAPI", "React", "Spring Boot", "pandas", "SQLAlchemy", "Celery", "gRPC")
THINGS = (
    "사용자 목록", "주문 내역", "결제 웹훅", "로그 파서", "캐시 레이어", "config loader",
    "rate limiter", "CSV exporter", "retry wrapper", "date formatter",
)  # fmt: skip
ERRORS = (
    "TypeError: 'NoneType' object is not subscriptable",
    "KeyError: 'user_id'",
    'java.lang.NullPointerException: Cannot invoke "String.length()"',
    "panic: runtime error: index out of range [3] with length 3",
    "ModuleNotFoundError: No module named 'requests'",
    "error[E0502]: cannot borrow `v` as mutable because it is also borrowed as immutable",
    "psycopg.errors.UniqueViolation: duplicate key value violates unique constraint",
)

SHORT_CODE = (
    "```python\ndef total(items):\n    return sum(i['price'] for i in items)\n```",
    "```js\nconst ids = users.map(u => u.id).filter(Boolean);\n```",
    "```go\nfor i := 0; i <= len(xs); i++ {\n    fmt.Println(xs[i])\n}\n```",
    "```sql\nSELECT name, COUNT(*) FROM orders GROUP BY name;\n```",
    "```python\nwith open(path) as f:\n    data = json.load(f)\nprint(data['items'][0])\n```",
    "```bash\nfor f in *.log; do gzip $f; done\n```",
)

LONG_CODE = {
    "counter": """```python
import threading

class Counter:
    def __init__(self):
        self.value = 0
        self.lock = threading.Lock()

    def incr(self):
        current = self.value
        with self.lock:
            self.value = current + 1

def worker(counter, n):
    for _ in range(n):
        counter.incr()

counter = Counter()
threads = [threading.Thread(target=worker, args=(counter, 10000)) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(counter.value)  # expected 80000, prints less
```""",
    "dashboard": """```typescript
export async function loadDashboard(userId: string) {
  const user = await api.get(`/users/${userId}`);
  const orders = await api.get(`/orders?user=${userId}`);
  const invoices = [];
  for (const order of orders.data) {
    const invoice = await api.get(`/invoices/${order.invoiceId}`);
    invoices.push(invoice.data);
  }
  const totals = invoices.reduce((acc, inv) => {
    acc[inv.currency] = (acc[inv.currency] || 0) + inv.amount;
    return acc;
  }, {} as Record<string, number>);
  return { user: user.data, orders: orders.data, totals };
}
```""",
    "handler": """```go
func (s *Server) handle(w http.ResponseWriter, r *http.Request) {
    s.mu.Lock()
    sess, ok := s.sessions[r.Header.Get("X-Session")]
    if !ok {
        http.Error(w, "no session", 401)
        return
    }
    data, err := s.db.Query(r.Context(), sess.UserID)
    if err != nil {
        http.Error(w, err.Error(), 500)
        return
    }
    s.mu.Unlock()
    json.NewEncoder(w).Encode(data)
}
```""",
    "sql": """```sql
SELECT u.id, u.email,
       (SELECT COUNT(*) FROM orders o WHERE o.user_id = u.id) AS order_count,
       (SELECT MAX(created_at) FROM orders o WHERE o.user_id = u.id) AS last_order,
       (SELECT SUM(amount) FROM payments p WHERE p.user_id = u.id AND p.status = 'ok') AS paid
FROM users u
WHERE u.created_at > now() - interval '90 days'
ORDER BY paid DESC NULLS LAST
LIMIT 100;
```""",
}

STACK_TRACE = """Traceback (most recent call last):
  File "/app/worker/tasks.py", line 88, in sync_orders
    for row in client.fetch(page=page):
  File "/app/clients/shop.py", line 41, in fetch
    resp = self.session.get(url, timeout=5)
  File "/usr/local/lib/python3.11/site-packages/requests/sessions.py", line 602, in get
    return self.request("GET", url, **kwargs)
  File "/usr/local/lib/python3.11/site-packages/requests/adapters.py", line 532, in send
    raise ReadTimeout(e, request=request)
requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='shop.internal', port=443): Read
timed out. (read timeout=5)"""

# A good answer per template; a weak model's answer to a hard one comes from WEAK_SHALLOW.
# weight < 1: rarer phrasings (the keyword-bearing easy ones would otherwise dominate FPs).
# fmt: off
TEMPLATES = (
    # ---- easy, Korean
    Template("ko", False, "{lang_name}에서 리스트를 역순으로 정렬하는 방법 알려줘", "정렬 함수에 역순 옵션을 주면 됩니다. Python이라면:\n```python\nitems.sort(reverse=True)\n```"),
    Template("ko", False, "이 코드가 뭘 하는지 한 줄로 설명해줘\n{short_code}", "입력 목록을 한 번 순회하면서 값을 모아 결과를 만드는 코드입니다."),
    Template("ko", False, "git에서 마지막 커밋 메시지만 수정하려면?", "`git commit --amend -m \"새 메시지\"` 를 쓰세요. 이미 push했다면 `--force-with-lease`가 필요합니다."),
    Template("ko", False, "{error} 이 에러는 무슨 뜻이야?", "값이 예상한 형태가 아닐 때 나는 에러입니다. 에러가 난 줄 바로 앞에서 값을 출력해 확인해 보세요."),
    Template("ko", False, "{thing} 함수 이름 좀 추천해줘. 영어로", "`load_items`, `fetch_records`, `build_index` 정도가 무난합니다."),
    Template("ko", False, "{lib} 설치 명령어가 뭐였지?", "대부분 `pip install <패키지명>` 또는 `npm install <패키지명>` 입니다. 버전은 고정해 두세요."),
    Template("ko", False, "정규식으로 이메일 형식 검사하는 예제 하나만", "```python\nimport re\nEMAIL = re.compile(r\"^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$\")\n```\n완벽한 검증은 아니니 확인 메일로 보완하세요."),
    Template("ko", False, "이 SQL에서 ORDER BY를 추가하려면 어디에 넣어야 해?\n{short_code}", "GROUP BY 다음, LIMIT 앞에 넣으면 됩니다."),
    Template("ko", False, "디버그 모드 켜는 환경변수 이름이 뭐였지? {lib} 기준으로", "보통 `DEBUG=1` 또는 `LOG_LEVEL=DEBUG` 입니다. 운영에서는 꼭 끄세요.", 0.4),
    Template("ko", False, "설계 문서 템플릿 제목 몇 개만 추천해줘", "배경, 목표와 비목표, 제안, 대안, 위험과 롤백, 일정 정도면 충분합니다.", 0.4),
    # ---- hard, Korean (some without any keyword: false negatives of v7)
    Template("ko", True, "멀티스레드에서 카운터 값이 기대보다 작게 나와요. 원인이 뭘까요?\n{counter_code}", "락 밖에서 현재 값을 읽기 때문입니다. 두 스레드가 같은 값을 읽고 둘 다 +1을 써서 증가분이 사라집니다. 읽기와 쓰기를 모두 락 안에서 하세요:\n```python\ndef incr(self):\n    with self.lock:\n        self.value += 1\n```"),
    Template("ko", True, "이 Go 서비스가 가끔 멈추는데 왜 그런지 모르겠어요\n{handler_code}", "에러 경로에서 뮤텍스를 풀지 않고 return 하고 있습니다. Lock 직후 `defer s.mu.Unlock()` 을 쓰고, DB 호출은 락 밖으로 빼세요."),
    Template("ko", True, "{thing} 모듈을 마이크로서비스로 쪼개려는데 아키텍처를 어떻게 가져가야 할까요?", "먼저 데이터 소유권 기준으로 경계를 나누고, 동기 호출 대신 이벤트로 연결하세요. 한 번에 쪼개지 말고 strangler 패턴으로 한 기능씩 옮기는 것을 권합니다."),
    Template("ko", True, "이 쿼리 성능 최적화 방법 알려줘. 테이블이 2억 건이야\n{sql_code}", "상관 서브쿼리가 행마다 세 번 실행됩니다. orders와 payments를 미리 집계한 뒤 JOIN 하고, (user_id, created_at) 인덱스를 추가하세요. EXPLAIN ANALYZE로 전후를 비교하세요."),
    Template("ko", True, "레거시 {lib} 프로젝트를 최신 버전으로 마이그레이션하는 단계별 계획 세워줘", "1) 테스트 커버리지 확보 2) deprecated 경고 제거 3) 한 메이저 버전씩 올리기 4) 단계마다 카나리 배포 5) 롤백 절차 문서화 순서로 진행하세요."),
    Template("ko", True, "{thing} 코드 리팩터링 해줘. 테스트도 같이\n{long_code}", "책임별로 함수를 나누고 I/O를 경계로 밀어냈습니다. 각 함수에 대한 단위 테스트와 경계값 테스트를 함께 추가했습니다."),
    Template("ko", True, "결제 웹훅이 중복 처리되는 문제가 있어요. 멱등성을 보장하는 방법?", "이벤트 ID에 유니크 제약을 건 처리 기록 테이블을 두고, 같은 트랜잭션 안에서 기록과 상태 변경을 하세요. 중복 요청은 유니크 위반으로 걸러집니다.", 0.3),
    Template("ko", True, "분산 락 없이 재고 차감을 안전하게 하려면 어떻게 해야 하나요?", "`UPDATE stock SET qty = qty - 1 WHERE id = ? AND qty > 0` 처럼 조건부 UPDATE 한 문장으로 처리하고, 영향받은 행 수로 성공 여부를 판단하세요.", 0.3),
    Template("ko", True, "메모리 사용량이 계속 늘어나요. 누수 지점 찾는 법 알려주세요\n{long_code}", "tracemalloc으로 두 시점의 스냅샷을 비교하세요. 전역 캐시나 리스너 등록 해제 누락이 흔한 원인입니다."),
    # ---- easy, English
    Template("en", False, "How do I reverse a list in {lang_name}?", "Most languages have a built-in: `xs[::-1]` or `xs.reverse()` in Python, `slices.Reverse(xs)` in Go."),
    Template("en", False, "What does this line do?\n{short_code}", "It walks the collection once and builds the result from each element."),
    Template("en", False, "Write a docstring for this function\n{short_code}", "```python\n\"\"\"Return the sum of the item prices.\n\nArgs:\n    items: dicts with a numeric 'price'.\n\"\"\"\n```"),
    Template("en", False, "What's the {lang_name} equivalent of Python's enumerate?", "Iterate with an index: `for i, x := range xs` in Go, `xs.forEach((x, i) => ...)` in JS."),
    Template("en", False, "Convert this snippet to use f-strings\n{short_code}", "Replace the concatenation with `f\"{name}: {total}\"`."),
    Template("en", False, "Give me a one-line bash command to count lines in all .py files", "`find . -name '*.py' -print0 | xargs -0 wc -l | tail -1`"),
    Template("en", False, "What does '{error}' mean?", "A value wasn't what the code expected at that line. Print or assert it right before the failing line."),
    Template("en", False, "Suggest a commit message for a small refactor of the {thing}", "`refactor: extract helpers from the module, no behaviour change`", 0.4),
    Template("en", False, "Is 'design' spelled the same in British English?", "Yes, 'design' is the same in British and American English.", 0.3),
    Template("en", False, "How do I turn on debug logging in {lib}?", "Set the logger level: `logging.getLogger(\"app\").setLevel(logging.DEBUG)`, or the framework's LOG_LEVEL setting.", 0.3),
    # ---- hard, English
    Template("en", True, "Why does this print less than 80000? Explain and fix it.\n{counter_code}", "The read of `self.value` happens outside the lock, so two threads can read the same value and both write value+1. Move the read inside the critical section:\n```python\ndef incr(self):\n    with self.lock:\n        self.value += 1\n```"),
    Template("en", True, "This endpoint is slow. Find the N+1 problem and rewrite it.\n{dashboard_code}", "Each invoice is awaited in sequence inside the loop. Fetch them together with `Promise.all(orders.data.map(...))`, or better, add a bulk endpoint so it is one round trip."),
    Template("en", True, "Design a multi-tenant rate limiter for our {lib} API with Redis", "Use a token bucket per (tenant, route) in Redis, updated atomically by a Lua script; keep limits in config, return 429 with Retry-After, and shadow-test before enforcing."),
    Template("en", True, "Do a security review of this handler; is there a race?\n{handler_code}", "Yes: the early return leaves the mutex locked, and the session map is read without bounds on the header. Unlock with defer, validate the header, and don't leak `err.Error()` to clients."),
    Template("en", True, "Plan a zero-downtime migration from MySQL 5.7 to PostgreSQL 16", "Dual-write behind a flag, backfill with a CDC stream, verify with row checksums, switch reads gradually, then stop writes to MySQL; keep the reverse stream for rollback."),
    Template("en", True, "Our p99 latency doubled after upgrading {lib}. How would you dig in?", "Compare flame graphs before and after, check connection-pool defaults that changed in the release notes, and bisect the upgrade in a canary.", 0.3),
    Template("en", True, "Implement a lock-free ring buffer in {lang_name} with tests", "Single-producer/single-consumer: two atomic indices with acquire/release ordering, capacity a power of two; tests include a two-thread stress test.", 0.3),
    Template("en", True, "Why could this deadlock under load?\n{handler_code}", "On the error path the function returns while holding the lock, so the next request blocks forever. Use `defer mu.Unlock()` and keep I/O outside the critical section."),
    # ---- easy, mixed Korean/English
    Template("mixed", False, "{lang_name} list comprehension 예제 하나 보여줘", "```python\nsquares = [x * x for x in range(10) if x % 2 == 0]\n```"),
    Template("mixed", False, "{lib}에서 env variable 읽는 best practice가 뭐야?", "설정 모듈 한 곳에서만 읽고, 타입 변환과 기본값을 명시하고, 필수 값이 없으면 시작할 때 실패하게 하세요."),
    Template("mixed", False, "이 snippet에 type hint 추가해줘\n{short_code}", "```python\ndef total(items: list[dict[str, float]]) -> float:\n    return sum(i[\"price\"] for i in items)\n```"),
    Template("mixed", False, "PR description 영어로 자연스럽게 다듬어줘: '{thing} 버그 수정'", "Fix a bug in the module: handle empty input and add a regression test."),
    # ---- hard, mixed Korean/English
    Template("mixed", True, "{lib} async task에서 가끔 timeout 나는데 root cause 찾아줘\n{stack}", "read timeout 5초가 upstream p99보다 짧습니다. 재시도는 백오프와 함께 멱등한 요청에만 하고, connect/read timeout을 분리해 설정하세요."),
    Template("mixed", True, "이 TypeScript code의 performance 병목 분석해줘\n{dashboard_code}", "루프 안의 순차 I/O가 병목입니다. 요청을 묶어서 보내고, 집계는 DB에서 한 번에 하세요."),
    Template("mixed", True, "event sourcing으로 {thing} 다시 짜려고 하는데 trade-off 정리해줘", "장점: 감사 추적, 재처리. 단점: 스키마 진화, 조회용 projection 관리, 운영 복잡도. 작은 aggregate부터 시작하세요."),
    Template("mixed", True, "k8s에서 pod가 OOMKilled 되는데 heap dump 분석 순서 알려줘", "limit 직전에 heap dump를 남기도록 설정하고, 덤프에서 retained size 상위 객체를 보고, 요청량과 메모리 그래프를 겹쳐 보세요.", 0.3),
)
# fmt: on

# (question, answer) pairs for later turns of a conversation.
# fmt: off
FOLLOW_UPS = {
    "ko": (
        ("고마워요. 그럼 테스트 코드도 작성해줄 수 있어요?", "정상 입력, 빈 입력, 경계값 세 가지 경우를 pytest로 작성했습니다."),
        ("방금 코드에서 에러가 나요: {error}", "입력이 비어 있을 때를 처리하지 않아서입니다. 함수 시작에서 빈 값을 먼저 확인하세요."),
        ("조금 더 자세히 설명해줘", "단계별로 다시 설명하면, 먼저 입력을 검증하고, 다음에 변환하고, 마지막에 결과를 저장합니다."),
        ("좋아요. 이걸 {lang_name}로도 보여줘", "같은 로직을 옮기면 구조는 동일하고 표준 라이브러리 함수만 바뀝니다."),
    ),
    "en": (
        ("Thanks. Can you add unit tests too?", "Added tests for the normal case, empty input and the boundary value."),
        ("That fails with: {error}", "The empty-input case isn't handled; check for it at the top of the function."),
        ("Can you explain the second step in more detail?", "The second step converts each record before saving, so invalid rows fail early."),
        ("Now show the same thing in {lang_name}.", "Same structure; only the standard-library calls change."),
    ),
    "mixed": (
        ("thanks! unit test도 추가해줘", "pytest로 normal, empty, boundary case 세 개 추가했습니다."),
        ("이렇게 하니까 {error} 가 떠요", "빈 input 처리가 빠져서 그렇습니다. 함수 시작에서 먼저 체크하세요."),
        ("edge case도 처리해줘", "None, 빈 list, 중복 값을 처리하도록 수정했습니다."),
    ),
}
# fmt: on

RETRY_PREFIXES = {
    "ko": ("", "", "다시 답해줘. ", "제대로 답해줘: ", "아니 그게 아니라, "),
    "en": ("", "", "Try again: ", "That's wrong. ", "Please answer properly: "),
    "mixed": ("", "", "다시: ", "no, "),
}

# A second, disjoint set of wordings of the same tasks, as different people would ask them,
# for measuring whether rules learned from labelled traffic generalise to wordings never
# seen in training: ``generate_traffic(..., wordings="test")`` draws from these. Never use
# them to mine keywords or fit anything, or the measurement stops being honest. Entry i is
# TEMPLATES[i]'s task (same lang, hard, answer, weight and slots), reworded naturally; the
# v7 keywords turn up about as often as in TEMPLATES, not always in the same entries.
# fmt: off
_TEST_TEXTS = (
    # ---- easy, Korean
    "배열을 큰 값부터 내림차순으로 정렬하고 싶어요. {lang_name} 코드로 보여주실 수 있나요?",
    "{short_code}\n위 코드 동작을 간단히 요약해 주세요",
    "방금 올린 커밋 메시지에 오타가 있는데, 코드는 그대로 두고 메시지만 고칠 수 있나요?",
    "실행하니까 이런 게 나오는데 어떤 의미인가요?\n{error}",
    "{thing} 처리하는 함수인데 영어 이름 뭐가 좋을까? 후보 몇 개만 줘",
    "새 프로젝트에 {lib} 추가하려면 터미널에 뭐라고 치면 되나요?",
    "이메일 주소 유효성 체크용 정규 표현식 간단한 거 있을까요?",
    "{short_code}\n여기 결과를 정렬하고 싶은데 ORDER BY는 몇 번째 줄에 들어가야 하나요?",
    "로컬에서 {lib} DEBUG 켜려면 환경 변수 뭐로 설정해?",
    "이번에 처음 설계 문서를 써보는데 목차 예시 좀 보여주실래요?",
    # ---- hard, Korean
    "스레드 8개로 돌리면 80000이 나와야 하는데 매번 숫자가 모자라. 락도 걸었는데 왜 이래?\n{counter_code}",
    "{handler_code}\n부하 걸리면 요청이 다 멈춰버려요. 원인이 뭘까요?",
    "모놀리스에 있는 {thing} 부분을 별도 서비스로 떼어내려고 해. 서비스 경계랑 통신 방식은 어떻게 설계하는 게 좋을까?",
    "{sql_code}\n2억 row 테이블인데 너무 느려요. 쿼리 최적화 좀 해주세요",
    "몇 년 묵은 {lib} 코드베이스를 최신 메이저 버전으로 마이그레이션해야 하는데, 어떤 순서로 진행해야 안전할까요?",
    "{long_code}\n{thing} 코드 좀 읽기 좋게 리팩토링하고 테스트도 붙여 주세요",
    "PG사에서 같은 웹훅을 두세 번씩 보내서 결제가 중복으로 반영돼요. 한 번만 처리되게 하려면 어떻게 설계해야 할까요?",
    "주문이 동시에 몰릴 때 재고가 마이너스로 떨어지는 걸 막고 싶어. Redis 락 같은 거 안 쓰고 DB만으로 가능해?",
    "{long_code}\n메모리가 조금씩 새는 것 같아. 어디서 새는지 어떻게 찾아?",
    # ---- easy, English
    "What's the idiomatic way to flip the order of an array in {lang_name}?",
    "{short_code}\nI found this in our codebase, what is it for?",
    "Add a short doc comment explaining the inputs and return value:\n{short_code}",
    "In {lang_name}, how do I loop over a collection and get the index at the same time, like enumerate() in Python?",
    "{short_code}\nrewrite the string formatting here with f-strings please",
    "Is there a quick shell one-liner that totals up the line count across every Python file in a repo?",
    "I keep getting this and don't understand it: {error}",
    "I did a little refactoring in the {thing}, nothing functional. What should the commit message say?",
    "Do Brits spell 'design' any differently, like they do with 'colour'?",
    "How do I get {lib} to log at DEBUG level?",
    # ---- hard, English
    "{counter_code}\nI'm running 8 threads x 10000 increments and the final count always comes up short. There's a lock in there, so what am I missing?",
    "Performance is awful here for users with lots of orders, the dashboard takes ~6 seconds to load. Can you speed it up?\n{dashboard_code}",
    "We need per-tenant request quotas on our {lib} API, backed by Redis. How would you architect that?",
    "Is this safe to ship? Check for security holes and races.\n{handler_code}",
    "We have to move production from MySQL 5.7 to Postgres 16 without taking the app offline. How would you run the migration?",
    "Since we bumped {lib} to the new release, tail latency is roughly 2x worse. Where do I start debugging this?",
    "I need an SPSC circular queue without mutexes in {lang_name}, plus tests that hammer it from two threads.",
    "{handler_code}\nWhat makes this hang at peak load?",
    # ---- easy, mixed Korean/English
    "list comprehension 문법을 {lang_name} sample code로 보고 싶어요",
    "{lib} 프로젝트에서 환경변수 config는 보통 어떻게 관리해요? 추천하는 pattern 있나요?",
    "{short_code}\n여기 function signature에 type annotation 붙여줄래?",
    "'{thing} 버그 수정' 이걸 PR 제목으로 쓸 건데 영어로 natural하게 바꿔줘",
    # ---- hard, mixed Korean/English
    "{stack}\n{lib} background job에서 이 error가 간헐적으로 터집니다. 근본 원인이 뭘까요?",
    "{dashboard_code}\n이 function 로딩이 너무 느린데 어디가 bottleneck인지 봐줄 수 있어요?",
    "{thing} 모듈을 event sourcing 방식으로 새로 짜면 pros/cons가 어떻게 될까요?",
    "container가 memory limit 넘어서 계속 OOMKilled로 재시작돼요. heap dump 떠서 분석하는 방법 step by step으로 알려주세요",
)
# fmt: on
TEST_WORDINGS = tuple(
    replace(template, text=text) for template, text in zip(TEMPLATES, _TEST_TEXTS, strict=True)
)

# fmt: off
_TEST_FOLLOW_UP_QUESTIONS = {
    "ko": (
        "감사합니다! 이 부분 단위 테스트도 짜 주실 수 있나요?",
        "알려주신 대로 돌렸더니 {error} 에러가 발생합니다",
        "잘 이해가 안 되는데 단계별로 다시 풀어서 얘기해 줄래?",
        "같은 걸 {lang_name} 버전으로도 짜 주세요",
    ),
    "en": (
        "Great, could you also write some tests for it?",
        "I ran your version and got {error}",
        "I don't quite follow step two, could you go over it again?",
        "What would this look like in {lang_name}?",
    ),
    "mixed": (
        "굿, test case도 몇 개 짜줄 수 있어?",
        "실행해보니 {error} error가 나는데요",
        "빈 값이나 corner case 들어와도 안 터지게 해줘",
    ),
}
# fmt: on
TEST_FOLLOW_UPS = {
    lang: tuple(
        (question, answer)
        for question, (_, answer) in zip(
            _TEST_FOLLOW_UP_QUESTIONS[lang], FOLLOW_UPS[lang], strict=True
        )
    )
    for lang in FOLLOW_UPS
}

TEST_RETRY_PREFIXES = {
    "ko": ("", "", "한 번 더 봐 주세요. ", "답이 틀린 것 같은데요. ", "그 얘기가 아니고요, "),
    "en": ("", "", "Again please: ", "That didn't work. ", "No, read my question again: "),
    "mixed": ("", "", "again, ", "아니요, "),
}

WEAK_SHALLOW = {
    "ko": (
        "코드를 다시 확인해 보세요. 문제가 없어 보입니다.",
        "락을 사용하고 있으므로 스레드 안전합니다.",
        "인덱스를 추가하면 빨라질 것입니다.",
    ),
    "en": (
        "The code looks correct to me; maybe the issue is elsewhere.",
        "You are already using a lock, so this is thread-safe.",
        "Try adding an index; that should fix performance.",
    ),
}

FEEDBACK_COMMENTS = {
    "ko": ("틀린 답이에요", "질문을 이해 못한 것 같아요", "너무 피상적임", "도움이 됐어요"),
    "en": ("wrong answer", "didn't address the race condition", "too shallow", "helpful, thanks"),
}
