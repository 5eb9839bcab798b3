"""Text similarity that works for Korean as well as English: character n-gram cosine.

Korean has no reliable word boundaries (particles attach to nouns), so words are a poor
unit; character bigrams of the whitespace-collapsed, lower-cased text work in both scripts.
"""

import math
import re
from collections import Counter

_SPACE = re.compile(r"\s+")


def char_ngrams(text: str, n: int = 2) -> Counter:
    text = _SPACE.sub(" ", text.lower()).strip()
    if len(text) < n:
        return Counter([text]) if text else Counter()
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def cosine(a: Counter, b: Counter) -> float:
    if not a or not b:
        return 0.0
    if len(a) > len(b):
        a, b = b, a
    dot = sum(count * b[gram] for gram, count in a.items())
    norm = math.sqrt(sum(c * c for c in a.values())) * math.sqrt(sum(c * c for c in b.values()))
    return dot / norm


def similarity(a: str, b: str) -> float:
    """Cosine of character-bigram counts: 1.0 for the same text, ~0 for unrelated ones."""
    return cosine(char_ngrams(a), char_ngrams(b))
