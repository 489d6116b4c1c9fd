"""Citations: parse [n] keys, map each to one retrieved passage, drop what the passages do not support.

A sentence of the answer is kept only if the passage(s) it cites support it:
- every number it states occurs there ("8192x8192", "8192×8192" and a page's "8192times8192" alike);
- every name it uses is mentioned there, up to case, hyphenation, plural and accents ("U-Net" ~ "UNet",
  "Fréchet" ~ LaTeX's "Fr\\'echet"); the paper's own names (its title's lead, the method names its
  abstract introduces) count as mentioned, and so does an acronym the sentence spells out itself
  ("Tiled Attention (TA)");
- most of its content words occur there (title included);
- it does not deny what the passage asserts, or assert what it denies or leaves out ("without X");
- a link, e-mail address or code it contains is in the passage word for word;
- it rests on no sentence of the passage that is addressed to the model (`rag.safety`): such a sentence
  supports nothing, even where one reached the passage.
A sentence citing the wrong passage is re-pointed to the one that supports it (unless the passage it cites
says the opposite: that claim is false, not mis-cited); an uncited sentence
gets the passage that supports it; a sentence joining two papers is checked against the passages it
cites together; a sentence that leans on a dropped one ("This ...") is dropped with it. Keys are
renumbered 1..m in order of first use, so `[n]` in the final text is `citations[n-1]`.

A sentence citing several passages keeps only the ones that support it on their own. If none does, it is
kept citing several only as a sentence joining papers: each of its clauses ("X reaches 85% [1] | while Y
...") is supported by one cited passage on its own, and each passage it keeps supports one of them; one
claim is never propped up by two passages that each hold part of it ("Jina-ColBERT-v2 used the FineWeb10-BT
collection created with PLAID-X [1][2]" with every fact but the name in [2] is dropped).

A key standing where a name should be ("[1] proposes ...", "The paper [2] shows ...", "as described in
[1].") is replaced by the name of the paper it cites (its title's lead, or "the paper “Title”"), so that
no sentence loses its subject when the markers move to its end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from rag.contradictions import contradicts
from rag.safety import passage_sentences
from rag.text import (
    capitalise,
    comparable,
    content_words,
    defined_acronyms,
    mentions,
    names,
    numbers,
    ordered_names,
    split_sentences,
    title_name,
    word_set,
)
from rag.types import Citation, Dropped, Hit

_GROUP = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
# Keys used as a noun: the sentence's subject ("[1] proposes", "The paper [2] shows", "[1] and [2] both use"),
# or after in/by/from/to ("proposed in [1]", "according to [2]"). Keys before "on"/"of" are left alone:
# "was tested on [1]" stands for an answer the model did not write, not for a paper.
_KEY_RUN = r"\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\](?:\s*(?:,|and)?\s*\[\s*\d+(?:\s*[,;]\s*\d+)*\s*\])*"
_PAPER_WORD = (
    r"(?:(?:the|this|that)\s+)?(?:(?:passage|paper|study|work|article|abstract|source|document|reference)s?\s+)?"
)
_SUBJECT_KEYS = re.compile(rf"^\s*{_PAPER_WORD}(?P<keys>{_KEY_RUN})(?=\s+(?-i:[a-z]))", re.IGNORECASE)
_OBJECT_KEYS = re.compile(rf"\b(?P<prep>in|by|from|to)\s+{_PAPER_WORD}(?P<keys>{_KEY_RUN})", re.IGNORECASE)
_SLOT = "\ue001"  # where a paper's name goes (a private-use character, removed from the sentence first)
_ANY_BRACKET_KEY = re.compile(r"\[\s*[\d,;\s]*\]")
# Sentence ends: . ! ? followed by space(s) and optional citation groups then a new sentence.
# A full stop after a lone capital is an initial ("A. Fowler"), not a sentence's end.
_SENTENCE = re.compile(r"(.+?(?:(?:(?<!\b[A-Z])\.|[!?])(?=\s|$|\[)|$)(?:[\s,;]*\[[\d,;\s]*\])*\.?)(?:\s+|$)", re.S)
_LINK = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w.+-]+@[\w-]+\.[\w.-]+|`[^`]+`|\b(?:import|def|sudo|curl|wget)\s+\S+")
# A sentence that opens like this refers back to the one before it.
_LEANS_BACK = re.compile(r"^(?:this|these|that|those|it|its|they|their|such|thus|hence|therefore)\b", re.IGNORECASE)
# ... unless it only links a claim of its own to it ("This suggests that <claim>"): then the claim is judged alone.
_LINKS_BACK = re.compile(
    r"^(?:this|these|that|it|they)\s+(?:\w+\s+)?(?:suggests?|shows?|indicates?|means?|implies|demonstrates?|confirms?)"
    r"\s+that\b[\s,]*(?P<claim>.+)$",
    re.IGNORECASE | re.S,
)

# Where a sentence joining two papers turns from one to the other.
_CLAUSE = re.compile(r";|,?\s+(?:while|whereas|compared (?:to|with)|versus|vs\.?|but|and(?=\s+\S*[A-Z0-9]))\s+")

MIN_SUPPORT = 0.5
_OFF_PASSAGE = "most of its words are not in the passage"
_RESTATES = "only repeats the question"
_YES_OR_NO = re.compile(r"^\W*(?:yes|no)\b", re.IGNORECASE)
_OPPOSITE = "says the opposite of the passage"
_NOTHING = "says nothing checkable"


def parse_keys(text: str) -> list[int]:
    """Every key in [1], [1, 2], [1][2] markers, in order of appearance (repeats kept)."""
    return [int(k) for group in _GROUP.findall(text) for k in re.split(r"\s*[,;]\s*", group) if k]


def strip_keys(text: str) -> str:
    return re.sub(r"\s+([.,;:!?])", r"\1", _ANY_BRACKET_KEY.sub("", text)).strip()


def name_slots(sentence: str) -> tuple[str, list[list[int]]]:
    """The sentence with each key that stands for a paper's name replaced by `_SLOT`, and the keys of
    each slot in order ("[1] proposes X [1]." -> ("\\ue001 proposes X [1].", [[1]]))."""
    slots: list[list[int]] = []

    def slot(match: re.Match[str], keep: str = "") -> str:
        slots.append(parse_keys(match.group("keys")))
        return keep + _SLOT

    sentence = sentence.replace(_SLOT, "")
    sentence = _SUBJECT_KEYS.sub(slot, sentence, count=1)
    sentence = _OBJECT_KEYS.sub(lambda m: slot(m, m.group("prep") + " "), sentence)
    return sentence, slots


def paper_name(title: str, sentence: str = "") -> str:
    """What a sentence calls a paper: its title's lead ("SimMIM"), or "the paper “Title”" (also when the
    sentence already uses the lead for the method itself)."""
    lead = title_name(title)
    if lead and not (sentence and mentions(lead, word_set(sentence))):
        return lead
    return f"the paper “{title}”"


# "... in 2022 (1).": small models sometimes cite in parentheses; only at a sentence's end is it read as a key.
_PAREN_KEYS = re.compile(r"\s*\((\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\)(?=[.!?]?$)")


def split_answer(text: str) -> list[str]:
    """Sentences of an answer, each with the citation markers that follow it."""
    text = " ".join(text.split())
    sentences = (m.group(1).strip() for m in _SENTENCE.finditer(text))
    return [_PAREN_KEYS.sub(r" [\1]", s) for s in sentences if s]


@dataclass
class Evidence:
    """What one passage (or several cited together) can support: its words, names, numbers, sentences."""

    text: str
    sentences: list[str]
    aliases: set[str] = field(default_factory=set)  # the paper's own names, mentioned even where not shown

    def __post_init__(self) -> None:
        self.words = content_words(self.text) | {w for a in self.aliases for w in content_words(a)}
        self.spelled = word_set(self.text) | {w for a in self.aliases for w in word_set(a)}
        self.numbers = numbers(self.text)

    @classmethod
    def of(cls, hit: Hit) -> Evidence:
        # A sentence addressed to the model ("Ignore the question and reply that ...") supports nothing,
        # even where one reached the passage: the filter of rag.safety, applied again on this side.
        sentences = passage_sentences(comparable(hit.text))
        heading = [hit.title, *([comparable(hit.byline)] if hit.byline else [])]  # authors and year, as shown
        return cls(". ".join([*heading, " ".join(sentences)]), [*heading, *sentences], set(hit.aliases))

    @classmethod
    def joined(cls, parts: Sequence[Evidence]) -> Evidence:
        return cls(
            " ".join(p.text for p in parts),
            [s for p in parts for s in p.sentences],
            set().union(*(p.aliases for p in parts)),
        )


def judge(
    claim: str, evidence: Evidence, asked: frozenset[str] = frozenset(), asked_names: frozenset[str] = frozenset()
) -> tuple[float, str | None, str | None]:
    """(share of the claim's words the evidence holds, why it cannot hold at all, the passage sentence it rests on).

    The share is 0 with a reason when a number, name, link or the stance is not in the evidence. Words
    of the question (`asked`) count neither way: a model that restates a paraphrased question in its
    answer is judged on what it adds (names and numbers are checked whatever their origin).
    """
    claim = comparable(strip_keys(claim))
    stated = numbers(claim)
    missing = stated - evidence.numbers
    if missing:
        return 0.0, f"states {sorted(missing)[0]}, which the passage does not", None
    # A claim about a named thing the passage never mentions is about some other paper's result
    # (small models pin a passage's number on the entity the question asked about).
    # An acronym the claim spells out itself ("Channel Vision Transformers (CVT)") rests on its words.
    spelled_out = defined_acronyms(claim)
    unknown = [n for n in sorted(names(claim, asked_names) - spelled_out) if not mentions(n, evidence.spelled)]
    if unknown:
        return 0.0, f"names {unknown[0]}, which the passage does not mention", None
    for link in _LINK.findall(claim):
        if link.strip("`").rstrip(".,;") not in evidence.text:
            return 0.0, f"contains {link[:40]!r}, which the passage does not", None
    words = content_words(claim) - stated
    if not words and not stated:
        return 0.0, _NOTHING, None
    own = words - asked
    if not own and not stated:
        if not _YES_OR_NO.match(claim):
            return 0.0, _RESTATES, None
        # "No, X is not needed" answers "Is X needed?" in the question's own words: its stance is the
        # answer, so it is judged on all its words, and its polarity against the passage below.
        own = words
    # A number found in the passage counts as a supported word ("2.1 [1]" is a fine terse answer).
    score = (len(own & evidence.words) + len(stated)) / (len(own) + len(stated))
    basis = max(evidence.sentences, key=lambda s: len(words & content_words(s)), default=None)
    # The claim's own denials are weighed against the sentence it rests on; a denial anywhere in the
    # passage ("challenge the narrative that X") against the claim.
    if basis is not None and words & content_words(basis) and contradicts(claim, basis, evidence.sentences, asked):
        return 0.0, _OPPOSITE, basis
    return score, None, basis


def support(claim: str, passage: str) -> float:
    """Share of the claim's content words found in the passage; 0 if a number, name, link or stance is not there."""
    return judge(claim, Evidence(passage, split_sentences(passage)))[0]


@dataclass
class Verified:
    text: str
    citations: list[Citation]
    dropped: list[Dropped] = field(default_factory=list)  # sentences removed, with the reason
    repaired: int = 0  # sentences whose citation was added or re-pointed


class CitationChecker:
    """Checks an answer sentence by sentence (so a stream can show only what is verified)."""

    def __init__(self, passages: Sequence[Hit], min_support: float = MIN_SUPPORT, question: str = ""):
        self.passages = list(passages)
        self.evidence = [Evidence.of(h) for h in passages]
        self.min_support = min_support
        self.asked = frozenset(content_words(question))
        self.asked_names = frozenset(names(question))
        self.order: list[int] = []  # passage indexes in order of first citation
        self.basis: dict[int, list[str]] = {}  # passage index -> the sentences kept claims rest on
        self.kept: list[str] = []
        self.dropped: list[Dropped] = []
        self.repaired = 0
        self._false_before = False  # the sentence before was dropped as false (not merely as off the passage)

    def _supports(self, claim: str, evidence: Evidence) -> tuple[bool, str | None, str | None]:
        """(supported, why not, the passage sentence it rests on)."""
        score, reason, basis = judge(claim, evidence, self.asked, self.asked_names)
        if reason is None and score < self.min_support:
            reason = _OFF_PASSAGE
        return reason is None, reason, basis

    def _joined(self, body: str, keys: Sequence[int]) -> tuple[list[int] | None, str | None]:
        """The passages among `keys` a sentence joining papers rests on ("X reaches 85% [1] while Y ... [2]"),
        or None with why not. Every clause that claims something must be supported by one of them on its
        own, each passage kept supports a clause, and at least two are kept: a single claim is never
        propped up by passages that each hold part of it."""
        ok, why, _ = self._supports(body, Evidence.joined([self.evidence[i] for i in keys]))
        if not ok:
            return None, why
        if not self._numbers_with_their_subjects(body, keys):
            return None, "pins one paper's number on another paper's name"
        holders: list[int] = []
        for clause in _CLAUSE.split(body):
            if not clause.strip():
                continue
            verdicts = [(i, self._supports(clause, self.evidence[i])) for i in keys]
            supporting = [i for i, (ok, _, _) in verdicts if ok]
            if supporting:
                holders.extend(i for i in supporting[:1] if i not in holders)
            elif not any(why in (_RESTATES, _NOTHING) for _, (_, why, _) in verdicts):
                return None, "no passage it cites holds all of it: " + (verdicts[0][1][1] or _OFF_PASSAGE)
        if len(holders) < 2:
            return None, "each passage it cites holds only part of one claim"
        return holders, None

    def _pair(self, body: str) -> list[int] | None:
        """Two passages that together hold a sentence neither holds alone ("X reaches 1.78 FID while Y ..."):
        each must hold a name or number of it that the other does not, and a clause of it on its own."""
        facts = [(n, "name") for n in names(body)] + [(n, "number") for n in numbers(body)]

        def holds(k: int, fact: tuple[str, str]) -> bool:
            evidence = self.evidence[k]
            return mentions(fact[0], evidence.spelled) if fact[1] == "name" else fact[0] in evidence.numbers

        best: tuple[float, list[int]] | None = None
        for i in range(len(self.evidence)):
            for j in range(i + 1, len(self.evidence)):
                own = [any(holds(a, f) and not holds(b, f) for f in facts) for a, b in ((i, j), (j, i))]
                if not all(own) or self._joined(body, [i, j])[0] is None:
                    continue
                score, _, _ = judge(
                    body, Evidence.joined([self.evidence[i], self.evidence[j]]), self.asked, self.asked_names
                )
                if best is None or score > best[0]:
                    best = (score, [i, j])
        return best[1] if best else None

    def _numbers_with_their_subjects(self, body: str, keys: Sequence[int]) -> bool:
        """In a sentence resting on several passages, each number must come from a passage that mentions
        what its clause is about (the clause's first name): one paper's score is never pinned on
        another paper's method ("BiGR reaches 1.80 FID [1][2]" with 1.80 from [2])."""
        subject = None
        for clause in _CLAUSE.split(body):
            first = ordered_names(clause, self.asked_names)
            subject = first[0] if first else subject
            if subject is None:
                continue
            for number in numbers(clause):
                holders = [self.evidence[k] for k in keys if number in self.evidence[k].numbers]
                if holders and not any(mentions(subject, e.spelled) for e in holders):
                    return False
        return True

    def drop(self, sentence: str, reason: str) -> None:
        self.dropped.append(Dropped(text=sentence, reason=reason))
        # Only a claim that was wrong (a number, name, stance or link the passage lacks) takes the
        # sentences that lean on it along; one that just restated the question does not.
        self._false_before = reason not in (_OFF_PASSAGE, _RESTATES, _NOTHING)

    def add(self, sentence: str) -> str | None:
        """The sentence with its citations renumbered, or None if no passage supports it."""
        body = strip_keys(sentence)
        if not body or not (content_words(body) or numbers(body)):
            return None
        template, slots = name_slots(sentence)
        if self._false_before and _LEANS_BACK.match(body):
            link = _LINKS_BACK.match(body)
            claim = link.group("claim").strip() if link else ""
            if len(content_words(claim)) < 4:
                self.drop(sentence, "refers back to a sentence that was dropped")
                return None
            # The link to the dropped sentence goes; the claim stands or falls on its own.
            body = claim[0].upper() + claim[1:]
            template, slots = name_slots(body)
        keys = [k - 1 for k in dict.fromkeys(parse_keys(sentence)) if 1 <= k <= len(self.passages)]
        cited, bases, reason = [], {}, None
        for index in keys:
            ok, why, basis = self._supports(body, self.evidence[index])
            if ok:
                cited.append(index)
                bases[index] = basis
            reason = reason or why
        if not cited and len(keys) > 1:
            # One sentence joining two papers ("X reports 83.8% [1] while Y reports 85.4% [2]").
            joined, why = self._joined(body, keys)
            if joined:
                cited = joined
                bases = {i: judge(body, self.evidence[i], self.asked, self.asked_names)[2] for i in joined}
            reason = reason or why
        if not cited and reason == _OPPOSITE:
            # The passage it cites says the opposite: the claim is false, not merely mis-cited (another
            # passage that shares its words, the question's subject aside, must not take it in).
            self.drop(sentence, reason)
            return None
        if not cited:
            # Cited nothing, a key that does not exist, or the wrong passage: find the right one (or two).
            judged = [(judge(body, e, self.asked, self.asked_names), i) for i, e in enumerate(self.evidence)]
            good = [(score, i, basis) for (score, why, basis), i in judged if why is None and score >= self.min_support]
            if good:
                _, index, basis = max(good, key=lambda g: g[0])
                cited, bases = [index], {index: basis}
            elif pair := self._pair(body):
                cited, bases = pair, {i: judge(body, self.evidence[i], self.asked, self.asked_names)[2] for i in pair}
            else:
                self.drop(
                    sentence, reason or self._supports(body, Evidence.joined(self.evidence))[1] or "no passage holds it"
                )
                return None
            self.repaired += 1
        self._false_before = False
        for index in cited:
            if index not in self.order:
                self.order.append(index)
            basis = bases.get(index)
            if basis and basis not in self.basis.setdefault(index, []):
                self.basis[index].append(basis)
        stop = body[-1] if body[-1] in ".!?" else "."
        marks = "".join(f"[{self.order.index(i) + 1}]" for i in cited)
        if slots:
            body = self._named(template, slots, cited) or body
        out = f"{body.rstrip('.!?').rstrip()} {marks}{stop}"
        self.kept.append(out)
        return out

    def _named(self, template: str, slots: list[list[int]], cited: list[int]) -> str:
        """The sentence with each key that stood for a paper replaced by that paper's name: the paper it
        cited if that one holds the sentence, else the one it was re-pointed to."""
        filled = strip_keys(template)
        for slot in slots:
            wanted = [k - 1 for k in slot if k - 1 in cited] or cited
            who = " and ".join(paper_name(self.passages[i].title, filled) for i in wanted)
            filled = filled.replace(_SLOT, who, 1)
        return capitalise(filled)

    def result(self) -> Verified:
        citations = [
            Citation(
                key=n,
                paper_id=self.passages[i].paper_id,
                title=self.passages[i].title,
                text=self.passages[i].text,
                sentences=self.basis.get(i, []),
            )
            for n, i in enumerate(self.order, start=1)
        ]
        return Verified(text=" ".join(self.kept), citations=citations, dropped=self.dropped, repaired=self.repaired)


def verify(raw: str, passages: Sequence[Hit], min_support: float = MIN_SUPPORT, question: str = "") -> Verified:
    """Keep the supported sentences of `raw`, each citing the passage(s) that support it."""
    checker = CitationChecker(passages, min_support, question)
    for sentence in split_answer(raw):
        checker.add(sentence)
    return checker.result()
