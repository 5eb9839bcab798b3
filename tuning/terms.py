"""Candidate keyword terms of a request: the words people use to describe a task.

The engine routes a request to the strong tier when a keyword is a substring of the NFC
lower-cased conversation, so a useful keyword is how people *describe* hard work
("교착상태", "race condition"). Two kinds of text look like terms but are not:

* Pasted code, logs and stack traces. Their tokens (``def``, ``self``, ``items``,
  ``name``) belong to whichever snippet was pasted: they overfit the labeled sample and
  then match every request that pastes similar code. Code is rarely fenced, so
  ``prose()`` finds it line by line, not only inside ``` fences.
* Korean grammar. Particles and endings attach to words without spaces ("멈추는데",
  "해줘"), so character n-grams or suffix stripping yield fragments (``는데``, ``아줘``)
  that match nearly every Korean sentence. ``terms()`` takes Korean words from the Kiwi
  morphological analyser instead, where particles (J*), endings (E*) and suffixes (XS*)
  are morphemes of their own and are never kept.

What ``prose(text)`` removes:

1. fenced blocks (``` or ~~~, closed or running to the end) and inline `code` spans;
2. lines that match a code/log/trace shape outright (``_HARD``): ``Traceback (most
   recent call last):``, ``File "...", line 88``, ``java.lang.X: ...``, ``TypeError: ...``,
   ``panic: ...``, ``error[E0502]: ...``, log-level or timestamp prefixes, ``$ `` prompts,
   ``#!``/``#include``/``//`` comments, decorators, markup tags;
3. other lines by score (``_line_is_code``): each whitespace token carries code signals
   (calls ``f(``, operators ``= == -> :: {} [] ; | $``, snake_case, camelCase, dotted
   names, ``--flags``, paths, stray symbols, single letters) and each plain word is a
   prose signal; a run of four or more plain words (a sentence) adds a strong prose
   bonus. Without such a run, the line shape adds code weight: ending in ``{ } ; ( [ \\``,
   starting with a statement keyword (``def``, ``import``, ``func``, SQL ``SELECT``...),
   a ``for x in y:`` block header. A line is code when its code weight beats its prose
   weight, and also (context) when it is indented under a code line or directly follows
   one without being a sentence. A lower-case line with a ``--flag`` and no sentence in
   it is a shell command.
4. Lines with Hangul are prose (Hangul is the strongest prose signal), but each run of
   non-Hangul text inside them is judged like a line of its own, so "TypeError: ... 이
   에러는 무슨 뜻이야?" keeps "이 에러는 무슨 뜻이야?" and "Django에서" keeps "Django".
   In the prose that stays, single strongly code-like tokens (``obj.method()``,
   ``user_id``, URLs) and quoted error messages ("What does 'KeyError: ...' mean?") go.

What ``terms(text)`` keeps, from ``prose()`` of the NFC text, lower-cased: Latin words of
3+ characters that are not in STOPWORDS_EN (a published list) or RESERVED_WORDS
(programming languages' keywords), and bigrams of two kept words one space apart; Korean
nouns, roots and verb/adjective stems of 2+ syllables written whole (not contracted), and
nouns written together as a compound. Every term is checked to be a substring of the NFC
lower-cased text, so the engine matches it verbatim.

The heuristic is tuned on chat requests (a few prose lines around pasted code); it errs
towards dropping a short ambiguous line, since a missed term costs less than a junk one.
"""

from __future__ import annotations

import keyword
import re
import threading
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kiwipiepy import Kiwi, Token

# Glasgow IR group stop-word list, as shipped verbatim in scikit-learn
# (sklearn/feature_extraction/_stop_words.py, ENGLISH_STOP_WORDS; 318 words).
_GLASGOW_STOP_WORDS = """
    a about above across after afterwards again against all almost alone along already also
    although always am among amongst amoungst amount an and another any anyhow anyone anything
    anyway anywhere are around as at back be became because become becomes becoming been before
    beforehand behind being below beside besides between beyond bill both bottom but by call can
    cannot cant co con could couldnt cry de describe detail do done down due during each eg
    eight either eleven else elsewhere empty enough etc even ever every everyone everything
    everywhere except few fifteen fifty fill find fire first five for former formerly forty
    found four from front full further get give go had has hasnt have he hence her here
    hereafter hereby herein hereupon hers herself him himself his how however hundred i ie if in
    inc indeed interest into is it its itself keep last latter latterly least less ltd made many
    may me meanwhile might mill mine more moreover most mostly move much must my myself name
    namely neither never nevertheless next nine no nobody none noone nor not nothing now nowhere
    of off often on once one only onto or other others otherwise our ours ourselves out over own
    part per perhaps please put rather re same see seem seemed seeming seems serious several she
    should show side since sincere six sixty so some somehow someone something sometime
    sometimes somewhere still such system take ten than that the their them themselves then
    thence there thereafter thereby therefore therein thereupon these they thick thin third this
    those though three through throughout thru thus to together too top toward towards twelve
    twenty two un under until up upon us very via was we well were what whatever when whence
    whenever where whereafter whereas whereby wherein whereupon wherever whether which while
    whither who whoever whole whom whose why will with within without would yet you your yours
    yourself yourselves
"""
STOPWORDS_EN = frozenset(_GLASGOW_STOP_WORDS.split())

# Python: the running interpreter's keyword module (hard and soft keywords).
PYTHON_KEYWORDS = tuple(w.lower() for w in (*keyword.kwlist, *keyword.softkwlist))
# ECMAScript 2024 §12.7.2 reserved words, plus strict-mode reserved words and literals;
# TypeScript Language Specification 1.8 §2.2.1 adds the predefined type names.
JAVASCRIPT_KEYWORDS = (
    "await", "break", "case", "catch", "class", "const", "continue", "debugger", "default",
    "delete", "do", "else", "enum", "export", "extends", "false", "finally", "for", "function",
    "if", "import", "in", "instanceof", "new", "null", "return", "super", "switch", "this",
    "throw", "true", "try", "typeof", "var", "void", "while", "with", "yield", "implements",
    "interface", "let", "package", "private", "protected", "public", "static",
    "any", "boolean", "number", "string", "symbol",
)  # fmt: skip
# The Go Programming Language Specification, "Keywords".
GO_KEYWORDS = (
    "break", "case", "chan", "const", "continue", "default", "defer", "else", "fallthrough",
    "for", "func", "go", "goto", "if", "import", "interface", "map", "package", "range",
    "return", "select", "struct", "switch", "type", "var",
)  # fmt: skip
# Java Language Specification SE 21 §3.9 reserved keywords, plus the literals (§3.10).
JAVA_KEYWORDS = (
    "abstract", "assert", "boolean", "break", "byte", "case", "catch", "char", "class",
    "const", "continue", "default", "do", "double", "else", "enum", "extends", "final",
    "finally", "float", "for", "goto", "if", "implements", "import", "instanceof", "int",
    "interface", "long", "native", "new", "package", "private", "protected", "public",
    "return", "short", "static", "strictfp", "super", "switch", "synchronized", "this",
    "throw", "throws", "transient", "try", "void", "volatile", "while", "_",
    "true", "false", "null",
)  # fmt: skip
# Kotlin language reference, "Keywords and operators": hard keywords.
KOTLIN_KEYWORDS = (
    "as", "break", "class", "continue", "do", "else", "false", "for", "fun", "if", "in",
    "interface", "is", "null", "object", "package", "return", "super", "this", "throw",
    "true", "try", "typealias", "typeof", "val", "var", "when", "while",
)  # fmt: skip
# The Rust Reference, "Keywords": strict and reserved keywords.
RUST_KEYWORDS = (
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum",
    "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move",
    "mut", "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true",
    "type", "unsafe", "use", "where", "while",
    "abstract", "become", "box", "do", "final", "gen", "macro", "override", "priv", "try",
    "typeof", "unsized", "virtual", "yield",
)  # fmt: skip
# ISO/IEC 9899:2018 (C17) §6.4.1 keywords.
C_KEYWORDS = (
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "_alignas", "_alignof",
    "_atomic", "_bool", "_complex", "_generic", "_imaginary", "_noreturn", "_static_assert",
    "_thread_local",
)  # fmt: skip
# ISO/IEC 9075:1992 (SQL-92) §5.2 reserved words: the core that builds queries and DML/DDL
# statements. Type, function and transaction words (table, transaction, commit, count) are
# left out on purpose: they are also how people describe database work.
SQL_KEYWORDS = (
    "select", "from", "where", "group", "order", "by", "having", "insert", "into", "values",
    "update", "set", "delete", "join", "inner", "outer", "left", "right", "full", "cross",
    "natural", "on", "using", "union", "intersect", "except", "distinct", "all", "as", "and",
    "or", "not", "null", "is", "in", "between", "like", "exists", "case", "when", "then",
    "else", "end", "asc", "desc", "create", "alter", "drop",
)  # fmt: skip
# GNU Bash Reference Manual §2 "Definitions", reserved words (the word-like ones).
BASH_KEYWORDS = (
    "if", "then", "elif", "else", "fi", "time", "for", "in", "until", "while", "do", "done",
    "case", "esac", "coproc", "select", "function",
)  # fmt: skip
RESERVED_WORDS = frozenset(
    (
        *PYTHON_KEYWORDS, *JAVASCRIPT_KEYWORDS, *GO_KEYWORDS, *JAVA_KEYWORDS,
        *KOTLIN_KEYWORDS, *RUST_KEYWORDS, *C_KEYWORDS, *SQL_KEYWORDS, *BASH_KEYWORDS,
    )
)  # fmt: skip

# ---- prose(): code detection -------------------------------------------------------------

_HANGUL_CHARS = "\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f"  # syllables, jamo (NFD), compat jamo
_HANGUL = re.compile(f"[{_HANGUL_CHARS}]")
_HANGUL_RUN = re.compile(f"[{_HANGUL_CHARS}]+")
_FENCED = re.compile(r"(`{3,}|~{3,}).*?(?:\1|\Z)", re.DOTALL)
_INLINE = re.compile(r"`[^`\n]+`")

# A line (or a run of non-Hangul text) that starts like this is code, a log or a trace.
_HARD = re.compile(
    r"""
      Traceback\ \(most\ recent\ call\ last\)
    | File\ "[^"]*",\ line\ \d+                                  # Python frame
    | at\ \S.*\(.*:\d+(?::\d+)?\)\s*$                            # Java / JS frame
    | Caused\ by: | Exception\ in\ thread\ "
    | goroutine\ \d+\ \[
    | thread\ '[^']*'\ panicked
    | (?i:panic|fatal\ error|error|warning)(?:\[\w+\])?:         # Go, Rust, CLI tools
    | (?:[A-Za-z_][\w$]*\.)*[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Warning|Violation
        |Timeout|Fault|Failure)(?:\[\w+\])?:(?:\s|$)             # TypeError: ...
    | [a-z_][\w$]*(?:\.[\w$]+)+:(?:\s|$)                         # java.lang.X: ...
    | \[?(?:TRACE|DEBUG|INFO|WARN|WARNING|ERROR|FATAL|CRITICAL)\]?[\s:]   # log level
    | \[?\d{4}-\d\d-\d\d[\sT]\d\d:\d\d                          # log timestamp
    | \d\d:\d\d:\d\d\b
    | \$\ \S | >>>\ | In\ \[\d+\]: | [\w.-]+@[\w.-]+:\S*[$\#]\   # prompts
    | \#!|\#include\b|\#define\b|//|/\*|\*/|<!--               # shebang, C/JS comments
    | @[A-Za-z_][\w.]*(?:\(|$)                                   # decorator, annotation
    | </?[A-Za-z][\w-]*(?:\s[^>]*)?/?>                          # markup tag
    """,
    re.VERBOSE,
)
# An error message after other words on a line: only unambiguous shapes, not "error:".
_TRAILING_ERROR = re.compile(
    r"(?<!\S)(?:panic:|fatal error:|error\[\w+\]:|(?:[A-Za-z_][\w$]*\.)*[A-Z]\w*"
    r"(?:Error|Exception|Exit|Interrupt|Warning|Violation|Timeout|Fault|Failure):(?:\s|$))"
)
_CALL = re.compile(r"[\w\])]\(")
_OPERATOR = re.compile(r"->|::|:=|\+=|-=|\*=|[=;{}\[\]|&$\\<>]")  # not ++: C++
_SNAKE = re.compile(r"[A-Za-z0-9]_[A-Za-z0-9]|(?<!\w)__?[A-Za-z]|[A-Za-z0-9]_(?!\w)")
_CAMEL = re.compile(r"(?<![A-Za-z])[a-z]{2,}[A-Z][a-z]")
_FLAG = re.compile(r"^--?[A-Za-z]")
_DOTTED = re.compile(r"[A-Za-z_]\w*\.[A-Za-z_]")
_PATH = re.compile(r"(?:^|[\s'\"(])(?:\.{0,2}/|~/)\w|\w/\w+/\w")
_ERROR_NAME = re.compile(r"[A-Z]\w*(?:Error|Exception)\b(:?)")
_SENTENCE_PUNCT = re.compile(r"^[\-\u2010-\u2015.…,:;?!·'\"“”‘’()]+$")  # dashes, ellipses
_WRAPPING = "\"'“”‘’()[]{}<>,.!?:"
_PLAIN = re.compile(r"[A-Za-z]+(?:[-'’][A-Za-z]+)*")
# Statement keywords that start code lines and seldom start an English sentence.
_STATEMENT_STARTS = frozenset(
    (
        "def", "class", "import", "return", "const", "var", "func", "fn", "package", "elif",
        "fi", "done", "esac", "pub", "val", "fun", "lambda", "del", "yield", "defer", "struct",
        "typedef", "impl", "mod", "extern", "throw", "catch", "except", "finally",
    )
)  # fmt: skip
# SQL clauses in capitals (SELECT, ORDER BY, LIMIT): a line that starts with one is SQL.
_SQL_CLAUSE = frozenset(w.upper() for w in (*SQL_KEYWORDS, "limit", "offset", "returning"))
_SQL_VERBS = frozenset(("select", "insert", "update", "delete"))  # SQL in lower case too
_SQL_STATEMENT = re.compile(
    r"(?:select\s.+\sfrom|insert\s+into|update\s+\S+\s+set|delete\s+from)\s", re.IGNORECASE
)
_CODE_ENDINGS = ("{", "}", ";", "(", "[", "\\")
_MIN_SENTENCE = 4  # tokens in a run of plain words that reads as a sentence
_SENTENCE_BONUS = 3


def _token_weight(token: str, sql_line: bool) -> int:
    """How strongly one whitespace-delimited token looks like code: 0, 1 or 2."""
    if _SENTENCE_PUNCT.match(token):
        return 0
    weight = 0
    # A trailing ";" can end a clause in prose; code lines ending in ";" score below.
    if _CALL.search(token) or _OPERATOR.search(token.rstrip(";")) or _FLAG.match(token):
        weight += 2
    if _SNAKE.search(token) or _CAMEL.search(token):
        weight += 2
    error = _ERROR_NAME.search(token)
    if error:
        weight += 2 if error.group(1) else 1
    if "://" in token:
        weight += 2  # a URL
    weight += bool(_DOTTED.search(token)) + bool(_PATH.search(token)) + ("*." in token)
    core = token.strip(_WRAPPING)
    if not any(c.isalnum() for c in token):
        weight += 1  # a stray symbol: #, *, +, %
    elif len(core) == 1 and core.isalpha() and core not in "aAI":
        weight += 1  # a single-letter name: x, f, i
    elif sql_line and core.isupper() and core in _SQL_CLAUSE:
        weight += 1  # SELECT ... FROM ... in a line that starts like SQL
    return min(weight, 2)


def _is_plain(token: str) -> bool:
    return bool(_PLAIN.fullmatch(token.strip(_WRAPPING)))


def _line_is_code(line: str, after_code: bool) -> bool:
    """Whether one line (or a non-Hangul run of a Hangul line) is code. ``after_code``:
    the line continues code (directly follows a code line, or is indented 4+), so only a
    sentence or a plain question makes it prose."""
    text = line.strip()
    if not text or _SENTENCE_PUNCT.match(text):
        return False
    if _HARD.match(text):
        return True
    tokens = text.split()
    first = tokens[0].strip(_WRAPPING)
    if first.islower() and first in RESERVED_WORDS and text.endswith(":") and len(tokens) <= 6:
        return True  # a block header: for t in threads:, with open(p) as f:, else:
    sql_line = first in _SQL_CLAUSE or first.lower() in _SQL_VERBS
    code = 3 if _SQL_STATEMENT.match(text) else 0
    prose = 0
    run = run_words = 0  # the current run of plain words; its words that are not keywords
    sentence = False
    for token in tokens:
        weight = _token_weight(token, sql_line)
        code += weight
        word = token.strip(_WRAPPING).lower()
        if weight or not _is_plain(token):
            run = run_words = 0
            continue
        run += 1
        prose += word not in RESERVED_WORDS
        # English function words (is, this, if) glue a sentence even where a language
        # reserves them; code keywords (def, const) do not.
        run_words += len(word) > 1 and (word not in RESERVED_WORDS or word in STOPWORDS_EN)
        sentence = sentence or (run >= _MIN_SENTENCE and run_words >= 3)
    if sentence:
        return code > prose + _SENTENCE_BONUS
    if after_code:
        # Continuation of the code above, unless it reads as a short plain question or
        # sentence ("What causes this?").
        return code > 0 or prose < 2 or not text.endswith((".", "?", "!"))
    if text.endswith(_CODE_ENDINGS):
        code += 2
    if first in _STATEMENT_STARTS or (first == "from" and " import " in text) or sql_line:
        code += 2
    if first.islower() and any(_FLAG.match(t) for t in tokens[1:]):
        return True  # a shell command: git commit --amend, pip install -r x.txt
    return code > prose


def _drop_errors(text: str) -> str:
    """``text`` without error messages quoted in it ("What does 'KeyError: ...' mean?") or
    trailing it ("That fails with: TypeError: ..."), so the sentence around them stays."""
    for quote in "'\"“‘":
        start = text.find(quote)
        while start != -1:
            if _HARD.match(text, start + 1):
                close = {"“": "”", "‘": "’"}.get(quote, quote)
                end = text.rfind(close)
                end = len(text) if end <= start else end + 1
                text = f"{text[:start]} {text[end:]}"
            start = text.find(quote, start + 1)
    trailing = _TRAILING_ERROR.search(text)
    return text[: trailing.start()] if trailing and trailing.start() > 0 else text


def _strip_code_tokens(text: str) -> str:
    """Prose text without its strongly code-like tokens (obj.call(), user_id, URLs)."""

    def keep(token: re.Match[str]) -> str:
        return " " if _token_weight(token.group(), sql_line=False) >= 2 else token.group()

    return re.sub(r"\S+", keep, text)


def _hangul_line(line: str) -> str:
    """A line with Hangul, with its code-like runs of non-Hangul text replaced by a space."""
    parts: list[str] = []
    position = 0
    for match in _HANGUL_RUN.finditer(line):
        parts.append(_judge_run(line[position : match.start()]))
        parts.append(match.group())
        position = match.end()
    parts.append(_judge_run(line[position:]))
    return "".join(parts)


def _judge_run(run: str) -> str:
    if not run.strip():
        return run
    # Keep the spaces around a dropped run, so words on both sides never join up.
    if _line_is_code(run, after_code=False):
        return " "
    return _strip_code_tokens(_drop_errors(run))


def prose(text: str) -> str:
    """``text`` without code: fenced blocks, inline code spans, and unfenced code, logs and
    stack traces, judged line by line. Prose lines are kept (code-like tokens inside them
    dropped); removed lines are dropped entirely."""
    text = _INLINE.sub(" ", _FENCED.sub("\n", text))
    kept: list[str] = []
    last_code = previous_code = False  # the last non-blank line; the line just before
    for line in text.split("\n"):
        if not line.strip():
            kept.append(line)
            previous_code = False
            continue
        if _HANGUL.search(line):
            is_code = False
            kept.append(_hangul_line(line))
        elif line.startswith(("\t", "  ")) and last_code:
            is_code = True  # indented under a code line: the same block
        else:
            if not _HARD.match(line.strip()):
                line = _drop_errors(line)
            # An indented block (Markdown's unfenced code) reads like code continued.
            block = previous_code or line.startswith(("\t", "    "))
            is_code = _line_is_code(line, after_code=block)
            if not is_code:
                kept.append(_strip_code_tokens(line))
        last_code = previous_code = is_code
    return "\n".join(kept).strip("\n")


# ---- terms() -------------------------------------------------------------------------

# Latin words: a letter, then letters, digits and + # . - (c++, node.js, n+1, p99,
# thread-safe); "_" is matched so that snake_case names are dropped whole, not split.
_LATIN = "a-z0-9_\u00c0-\u024f\u0300-\u036f"  # with accents, composed or combining
_WORD = re.compile(f"(?<![{_LATIN}])[a-z][{_LATIN}+#.\\-]*")
_CONTRACTION = re.compile(r"['’](?:t|re|ve|ll|d|m)\b")  # don't, wasn't: "don" is no word
_KOREAN_TAGS = frozenset({"NNG", "NNP", "XR", "VV", "VA"})  # nouns, roots, verb/adj stems
_NOUN_TAGS = frozenset({"NNG", "NNP"})
_MAX_COMPOUND = 4  # nouns joined into one compound at most

_kiwi: Kiwi | None = None
_kiwi_lock = threading.Lock()


def _analyser() -> Kiwi:
    """The process's Kiwi, loaded on first use (~3 s, ~100 MB model) and then shared."""
    global _kiwi
    if _kiwi is None:
        with _kiwi_lock:
            if _kiwi is None:
                from kiwipiepy import Kiwi

                kiwi = Kiwi()
                kiwi.tokenize("")  # Kiwi finishes loading on its first call: do it here
                _kiwi = kiwi
    return _kiwi


def _english(text: str) -> set[str]:
    found: set[str] = set()
    previous: tuple[str, int] | None = None  # the last kept word and where it ended
    for match in _WORD.finditer(text):
        word = match.group().rstrip(".-")
        end = match.start() + len(word)
        if (
            len(word) < 3
            or "_" in word
            or word in STOPWORDS_EN
            or word in RESERVED_WORDS
            or any(len(part) < 2 for part in word.split("."))  # e.g, i.e, u.id, s.mu
            or _CONTRACTION.match(text, match.end())
        ):
            previous = None
            continue
        found.add(word)
        if len(word) > 4 and word.endswith("s") and not word.endswith("ss"):
            found.add(word[:-1])  # "deadlocks" also gives "deadlock", which matches both
        if previous and previous[1] == match.start() - 1 and text[previous[1]] == " ":
            found.add(f"{previous[0]} {word}")
        previous = (word, end)
    return found


def _is_hangul_word(surface: str) -> bool:
    return all("\uac00" <= c <= "\ud7a3" for c in surface)


def _korean(text: str, tokens: Sequence[Token]) -> set[str]:
    """Nouns, roots and uncontracted stems of >= 2 syllables, and noun compounds written
    without a space (멀티스레드 + 환경 as 멀티스레드환경). Whole morphemes only: a token
    whose text differs from its form (해 for 하+어) is a contraction, never a term."""
    found: set[str] = set()
    run: list[Token] = []  # adjacent nouns, each written as its form

    def close_run() -> None:
        for i in range(len(run)):
            for j in range(i + 2, min(len(run), i + _MAX_COMPOUND) + 1):
                found.add(text[run[i].start : run[j - 1].start + run[j - 1].len])
        run.clear()

    for token in tokens:
        tag = token.tag.split("-")[0]  # VV-R, VA-I: irregular conjugation marks
        surface = text[token.start : token.start + token.len]
        whole = surface == token.form and _is_hangul_word(surface)
        if tag in _KOREAN_TAGS and whole and len(surface) >= 2:
            found.add(surface)
        if tag in _NOUN_TAGS and whole:
            if run and run[-1].start + run[-1].len != token.start:
                close_run()
            run.append(token)
        else:
            close_run()
    close_run()
    return found


def terms_many(texts: Sequence[str]) -> list[set[str]]:
    """``terms()`` of many requests; Korean ones go to Kiwi in one multi-threaded batch."""
    nfc = [unicodedata.normalize("NFC", t) for t in texts]
    full = [t.lower() for t in nfc]
    # prose() reads the original case: camelCase and SQL in capitals are code signals.
    kept = [prose(t).lower() for t in nfc]
    found = [_english(k) for k in kept]
    korean = [i for i, k in enumerate(kept) if _HANGUL.search(k)]
    if korean:
        analysed = _analyser().tokenize([kept[i] for i in korean])
        for i, tokens in zip(korean, analysed, strict=True):
            found[i] |= _korean(kept[i], tokens)
    # Every term must match the engine's way verbatim; a dropped code span could have
    # joined two words that are apart in the text.
    return [{t for t in terms if t in text} for terms, text in zip(found, full, strict=True)]


def terms(text: str) -> set[str]:
    """The candidate terms of one request, each a substring of its NFC lower-cased text."""
    return terms_many([text])[0]
