"""Citations: parse [n] keys, map each to one retrieved passage, drop what the passages do not support.

A sentence of the answer is kept only if the passage it cites supports it: most of its content
words occur in that passage (title included) and every number it states occurs there too. A
sentence citing the wrong passage is re-pointed to the one that supports it; an uncited sentence
gets the passage that supports it; anything else is dropped. Keys are renumbered 1..m in order of
first use, so `[n]` in the final text is `citations[n-1]`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from .lexical import tokenize
from .types import Citation, Hit

_GROUP = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_ANY_BRACKET_KEY = re.compile(r"\[\s*[\d,;\s]*\]")
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")
# Sentence ends: . ! ? followed by space(s) and optional citation groups then a new sentence.
_SENTENCE = re.compile(r"(.+?(?:[.!?](?=\s|$|\[)|$)(?:\s*\[[\d,;\s]*\])*\.?)(?:\s+|$)", re.S)

MIN_SUPPORT = 0.5


def parse_keys(text: str) -> list[int]:
    """Every key in [1], [1, 2], [1][2] markers, in order of appearance (repeats kept)."""
    return [int(k) for group in _GROUP.findall(text) for k in re.split(r"\s*[,;]\s*", group) if k]


def strip_keys(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _ANY_BRACKET_KEY.sub("", text)).strip()


def split_answer(text: str) -> list[str]:
    """Sentences of an answer, each with the citation markers that follow it."""
    text = " ".join(text.split())
    return [m.group(1).strip() for m in _SENTENCE.finditer(text) if m.group(1).strip()]


def _numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


_WORD = re.compile(r"[A-Za-z0-9][\w\-+.]*[\w+]|[A-Za-z0-9]")


def names(text: str) -> set[str]:
    """Words that name something (SimCSE, Vim-S, GPT-3, UCF-101, OpenAI): capitals inside, or letters with digits.

    The first word of the text is skipped when it is merely capitalised ("The", "This").
    """
    out = set()
    for index, match in enumerate(_WORD.finditer(text)):
        word = match.group(0).rstrip(".")
        has_inner_capital = any(c.isupper() for c in word[1:])
        mixed = any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
        capitalised = word[:1].isupper() and index > 0
        if has_inner_capital or mixed or capitalised:
            out.add(word)
    return out


def _mentions(name: str, passage: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", passage, re.IGNORECASE) is not None


def content_words(text: str) -> set[str]:
    return set(tokenize([text])[0])


def support(claim: str, passage: str) -> float:
    """Share of the claim's content words found in the passage; 0 if a number is not in the passage."""
    claim = strip_keys(claim)
    numbers = _numbers(claim)
    if not numbers <= _numbers(passage):
        return 0.0
    # A claim about a named thing the passage never mentions is about some other paper's result
    # (small models pin a passage's number on the entity the question asked about).
    if not all(_mentions(name, passage) for name in names(claim)):
        return 0.0
    words = content_words(claim) - numbers
    if not words and not numbers:
        return 0.0
    # A number found in the passage counts as a supported word ("2.1 [1]" is a fine terse answer).
    return (len(words & content_words(passage)) + len(numbers)) / (len(words) + len(numbers))


@dataclass
class Verified:
    text: str
    citations: list[Citation]
    dropped: list[str] = field(default_factory=list)  # sentences removed as unsupported
    dropped_reasons: list[str] = field(default_factory=list)  # why, one per dropped sentence
    repaired: int = 0  # sentences whose citation was added or re-pointed


class CitationChecker:
    """Checks an answer sentence by sentence (so a stream can show only what is verified)."""

    def __init__(self, passages: Sequence[Hit], min_support: float = MIN_SUPPORT):
        self.passages = list(passages)
        self.sources = [f"{h.title}. {h.text}" for h in passages]
        self.min_support = min_support
        self.order: list[int] = []  # passage indexes in order of first citation
        self.kept: list[str] = []
        self.dropped: list[str] = []
        self.dropped_reasons: list[str] = []
        self.repaired = 0

    def add(self, sentence: str) -> str | None:
        """The sentence with its citations renumbered, or None if no passage supports it."""
        body = strip_keys(sentence)
        if not body or not (content_words(body) or _numbers(body)):
            return None
        keys = [k for k in dict.fromkeys(parse_keys(sentence)) if 1 <= k <= len(self.passages)]
        cited = [k - 1 for k in keys if support(body, self.sources[k - 1]) >= self.min_support]
        if not cited:
            # Cited nothing, a key that does not exist, or the wrong passage: find the right one.
            scores = [support(body, s) for s in self.sources]
            best = max(range(len(scores)), key=scores.__getitem__, default=None)
            if best is None or scores[best] < self.min_support:
                self.dropped.append(sentence)
                self.dropped_reasons.append(self._why_unsupported(body, keys, best, scores))
                return None
            cited = [best]
            self.repaired += 1
        for index in cited:
            if index not in self.order:
                self.order.append(index)
        stop = body[-1] if body[-1] in ".!?" else "."
        marks = "".join(f"[{self.order.index(i) + 1}]" for i in cited)
        out = f"{body.rstrip('.!?').rstrip()} {marks}{stop}"
        self.kept.append(out)
        return out

    def _why_unsupported(self, body: str, keys: list[int], best: int | None, scores: list[float]) -> str:
        """One line: why no passage supports `body` (the checks of `support`, in its order)."""
        everywhere = " ".join(self.sources)
        missing = sorted(_numbers(strip_keys(body)) - _numbers(everywhere))
        if missing:
            return f"states {', '.join(missing)}, which no passage contains"
        unnamed = sorted(n for n in names(strip_keys(body)) if not _mentions(n, everywhere))
        if unnamed:
            return f"names {', '.join(unnamed)}, which no passage mentions"
        cited = f"cites {''.join(f'[{k}]' for k in keys)}; " if keys else "cites nothing; "
        if best is None:
            return cited + "there were no passages"
        return (f"{cited}the closest passage, [{best + 1}], holds {scores[best]:.0%} of its content words "
                f"({self.min_support:.0%} needed, with every number and name)")

    def result(self) -> Verified:
        citations = [
            Citation(key=n, paper_id=self.passages[i].paper_id, title=self.passages[i].title, text=self.passages[i].text)
            for n, i in enumerate(self.order, start=1)
        ]
        return Verified(text=" ".join(self.kept), citations=citations, dropped=self.dropped,
                        dropped_reasons=self.dropped_reasons, repaired=self.repaired)


def verify(raw: str, passages: Sequence[Hit], min_support: float = MIN_SUPPORT) -> Verified:
    """Keep the supported sentences of `raw`, each citing the passage(s) that support it."""
    checker = CitationChecker(passages, min_support)
    for sentence in split_answer(raw):
        checker.add(sentence)
    return checker.result()
