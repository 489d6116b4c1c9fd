"""Does a claim contradict the passage sentence it rests on? Denials and their scope, a "No, ..."
answer against its own words, directions (better/worse, more/less, faster/slower) and numbers set
aside; the citation checks drop a sentence these rules call contradicted."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from rag.text import content_words, names, numbers

# What denies the words after it: negators, and stance words that reject a claim ("challenge the
# narrative that X", "contrary to X"). Their scope runs to the next punctuation, at most 12 words.
_DENIAL = re.compile(
    r"\b(?:not|never|cannot|neither|nor|refutes?|refuted|debunks?|debunked|contrary to|myth that)\b|n't\b"
    r"|\b(?:challenge[sd]?|challenging|question(?:s|ed|ing)?|dispute[sd]?)\s+the\s+(?:\w+\s+){0,3}"
    r"(?:narrative|assumption|belief|view|notion|idea|claim|wisdom|consensus|premise)\b",
    re.IGNORECASE,
)


# Weaker cues, read only where a passage leaves something out ("without block-wise masking"): a claim
# that asserts it ("uses block-wise masking") reverses the passage. Not taken as the claim's own
# denial against its basis: "needs no extra data" may rest on "with zero extra data".
_ABSENCE = re.compile(r"\b(?:without|no)\b", re.IGNORECASE)


_CLAUSE = re.compile(r"[^,;:.!?()]+")


# A denial does not reach past these ("without pre-trained encoders while using only 45M parameters").
_SCOPE_END = re.compile(
    r"\b(?:while|whilst|whereas|but|although|though|yet|however|and|or|which|where|when|because|since|so|thus|hence)\b",
    re.IGNORECASE,
)


def denials(text: str, absences: bool = False) -> list[set[str]]:
    """The content words each denial in the text applies to ("do not consider negation" -> {consid, negat});
    with `absences`, also what it says is left out ("without X", "no X")."""
    return [scope for _, scope in denials_of(text, absences)]


def denials_of(text: str, absences: bool = False) -> list[tuple[set[str], set[str]]]:
    """Each denial as (its subject: the content words of its clause before the cue, its scope)."""
    text = re.sub(r"\bunnecessar(?:y|ily)\b", "not necessary", text, flags=re.IGNORECASE)
    out = []
    cues = [_DENIAL, _ABSENCE] if absences else [_DENIAL]
    for clause in _CLAUSE.findall(text):
        for cue in (c for pattern in cues for c in pattern.finditer(clause)):
            after = _SCOPE_END.split(clause[cue.end() :], maxsplit=1)[0]
            after = " ".join(after.split()[:12])
            if scope := content_words(after):
                out.append((content_words(_ANSWER_WORD.sub("", clause[: cue.start()])), scope))
    return out


_ANSWER_WORD = re.compile(r"^\W*(?:yes|no)\b\W*", re.IGNORECASE)


def _same_subject(subject: set[str], basis: str) -> bool:
    """Is the basis about the denial's subject? A subject of several words mostly absent from it is another
    thing ("a dedicated vector store is not needed" against the title "...: Lucene Is All You Need");
    a short or empty one ("It", "The model") may be anything the basis is about."""
    return len(subject) < 2 or 2 * len(subject & content_words(basis)) >= len(subject)


# Clause boundaries for polarity and direction: a denial or a direction word speaks for its own clause
# ("SPLADE does not rely on dense vectors and achieves strong results": the second clause is asserted).
_POLAR_CLAUSE = re.compile(
    r"[;:()]|,\s|\s(?:and|but|while|whilst|whereas|although|though|yet|however|compared (?:with|to))\s", re.IGNORECASE
)


def _clauses(text: str) -> list[str]:
    return [c for c in _POLAR_CLAUSE.split(text) if c.strip()]


def _denies(claim_scope: set[str], basis: str) -> bool:
    """Does the claim's denial (its scope) deny what the basis asserts? The clause of the basis that holds
    most of the scope decides: asserted there, the claim denies it; denied there ("does not", "without",
    "no"), the two agree. Every word of the scope must be in the basis."""
    if not claim_scope <= content_words(basis):
        return False
    clauses = [(content_words(c), set().union(*denials(c, absences=True))) for c in _clauses(basis)]
    best = max((len(claim_scope & words) for words, _ in clauses), default=0)
    holders = [denied for words, denied in clauses if len(claim_scope & words) == best]
    return best > 0 and not any(claim_scope & denied for denied in holders)


# "No, X does Y" that restates the question without a qualifier: the answer word denies its own sentence.
_ANSWER_NO = re.compile(r"^\W*no\b\s*[,.;:!\u2013\u2014-]+\s*", re.IGNORECASE)


_QUALIFIED = re.compile(r"\b(?:only|just|merely|except|but|instead|rather|however|although|though|unlike)\b", re.I)


# Question words that need no echo in the answer ("According to the paper, does X ...").
_ASKED_ASIDE = {"doe", "accord", "paper", "studi", "work", "author", "articl", "abstract", "research", "report"}


def _answers_no_then_says_yes(claim: str, asked: frozenset[str]) -> bool:
    opening = _ANSWER_NO.match(claim)
    if opening is None or not asked:
        return False
    rest = claim[opening.end() :]
    wanted = set(asked) - _ASKED_ASIDE
    if not wanted or _QUALIFIED.search(rest) or any(scope & wanted for scope in denials(rest, absences=True)):
        return False  # "No, X needs no Y", "No, only on Z": the sentence itself says no
    return wanted <= content_words(rest)


# Direction words: (kind, sign). "quality": better or worse; "amount": more or less of something (whether
# that is better depends on the thing: more accuracy, less error); "speed": faster or slower.
_DIRECTIONS: list[tuple[str, str, int, bool]] = [
    # (pattern, kind, sign, comparative: "X <word> Y" compares X with Y)
    (
        r"improv(?:e|es|ed|ing|ement|ements)|enhanc(?:e|es|ed|ing)|benefit(?:s|ed|ing)?|beneficial|helps?|helped"
        r"|strengthen(?:s|ed|ing)?",
        "quality",
        1,
        False,
    ),
    (r"better|outperform(?:s|ed|ing)?|superior|surpass(?:es|ed|ing)?|beats?", "quality", 1, True),
    (
        r"degrad(?:e|es|ed|ing|ation)|worsen(?:s|ed|ing)?|hurts?|hurting|harm(?:s|ed|ing|ful)?|detrimental"
        r"|impair(?:s|ed|ing)?|weaken(?:s|ed|ing)?|deteriorat(?:e|es|ed|ing)",
        "quality",
        -1,
        False,
    ),
    (r"worse|underperform(?:s|ed|ing)?|inferior|trails?|lags? behind", "quality", -1, True),
    (
        r"increas(?:e|es|ed|ing)|rais(?:e|es|ed|ing)|boost(?:s|ed|ing)?|grow(?:s|n|ing)?|doubl(?:e|es|ed|ing)"
        r"|tripl(?:e|es|ed|ing)|amplif(?:y|ies|ied)",
        "amount",
        1,
        False,
    ),
    (r"higher|more", "amount", 1, True),
    (
        r"reduc(?:e|es|ed|ing|tion)|lower(?:s|ed|ing)|decreas(?:e|es|ed|ing)|cuts?|cutting|drops?|dropped"
        r"|declin(?:e|es|ed|ing)|diminish(?:es|ed|ing)?|shrinks?|halv(?:e|es|ed|ing)",
        "amount",
        -1,
        False,
    ),
    (r"lower|less|fewer", "amount", -1, True),
    (r"speeds? up|sped up|speeding up|accelerat(?:e|es|ed|ing)", "speed", 1, False),
    (r"faster|quicker", "speed", 1, True),
    (r"slows? down|slowed down|slowing down|decelerat(?:e|es|ed|ing)", "speed", -1, False),
    (r"slower", "speed", -1, True),
]


_DIRECTION = [(re.compile(rf"\b(?:{p})\b", re.IGNORECASE), kind, sign, comp) for p, kind, sign, comp in _DIRECTIONS]


# Where the thing a direction word acts on ends ("improves accuracy | on ImageNet").
_PHRASE_END = re.compile(
    r"(?<![\w-])(?:on|in|at|for|with|by|from|over|of|across|when|under|via|using|than|to|per)(?![\w-])", re.IGNORECASE
)


_THAN = re.compile(r"\bthan\b", re.IGNORECASE)


_LEADING = re.compile(
    r"^\s*(?:(?:than|to|for|on|over|the|a|an|its|their|our|much|far|significantly|slightly)\s+)*", re.IGNORECASE
)


# Things of which more is better, and things of which less is: "reduces accuracy" is worse, "reduces error" better.
# fmt: off
_GOOD = {"accuraci", "perform", "qualiti", "precis", "recal", "f1", "score", "robust", "throughput", "speed", "effici",
         "general", "fidel", "bleu", "roug", "auc", "success", "reward", "correl", "coverag"}


_BAD = {"error", "loss", "latenc", "cost", "memori", "time", "perplex", "fid", "hallucin", "bias", "overhead", "risk",
        "complex", "varianc", "wer", "mse", "rmse", "mae"}


@dataclass(frozen=True)
class _Direction:
    kind: str
    sign: int
    before: frozenset[str]  # the clause's words before the direction word: what acts, or what is compared
    thing: frozenset[str]  # what it acts on, or the measure compared ("higher GLUE score than X": GLUE score)
    compared: frozenset[str]  # what it is compared with ("than X", "outperforms X"); empty for plain verbs


# Comparatives that take what they are compared with as their object ("outperforms SGD").
_COMPARING_VERB = re.compile(r"outperform|underperform|surpass|beat|trail|lag", re.IGNORECASE)


def _phrase(text: str) -> frozenset[str]:
    text = text[_LEADING.match(text).end() :]  # type: ignore[union-attr]
    return frozenset(content_words(_PHRASE_END.split(text, maxsplit=1)[0]))


def _directions(text: str) -> list[_Direction]:
    """The direction words of a text with what they act on, clause by clause; none in a clause with a denial
    ("does not improve" is left to the denial checks)."""
    out = []
    for clause in _clauses(text):
        if denials(clause, absences=True):
            continue
        for pattern, kind, sign, comparative in _DIRECTION:
            for cue in pattern.finditer(clause):
                rest = clause[cue.end() :]
                before = frozenset(content_words(clause[: cue.start()]))
                compared: frozenset[str] = frozenset()
                if not comparative:
                    thing = _phrase(rest)
                elif _COMPARING_VERB.match(cue.group(0)):
                    thing, compared = frozenset(), _phrase(rest)
                elif than := _THAN.search(rest):  # "higher GLUE score than X"
                    thing, compared = frozenset(content_words(rest[: than.start()])), _phrase(rest[than.end() :])
                else:  # "with less memory"
                    thing = _phrase(rest)
                out.append(_Direction(kind, sign, before, thing, compared))
    return out


def _quality(d: _Direction) -> int | None:
    """+1 if the direction makes things better, -1 worse, None if that depends on a thing we cannot tell."""
    if d.kind != "amount":
        return d.sign
    good, bad = bool(d.thing & _GOOD), bool(d.thing & _BAD)
    return d.sign if good and not bad else -d.sign if bad and not good else None


def _same_thing(c: _Direction, b: _Direction) -> bool | None:
    """Are two direction words about the same thing? True, False, or None when the words cannot tell."""
    if c.thing and b.thing:
        return bool(c.thing & b.thing)
    if c.compared and b.compared:
        return bool((c.compared | c.before) & (b.compared | b.before))
    return bool(c.before & b.before) or None


def _reverses(c: _Direction, b: _Direction) -> bool:
    """Does the claim's direction word `c` say the opposite of the passage's `b` about the same thing?"""
    if not _same_thing(c, b):
        return False
    both_amounts = c.kind == "amount" and b.kind == "amount"
    sign_c = c.sign if both_amounts else _quality(c)
    sign_b = b.sign if both_amounts else _quality(b)
    if sign_c is None or sign_b is None:
        return False
    if c.compared and b.compared:
        aligned = len(c.before & b.before) + len(c.compared & b.compared)
        swapped = len(c.before & b.compared) + len(c.compared & b.before)
        if swapped > aligned:
            return sign_c == sign_b  # "SGD outperforms X" against "X outperforms SGD"
        return aligned > 0 and sign_c != sign_b
    if c.before and b.before and not c.before & b.before:
        return False  # about something else
    return sign_c != sign_b


def _agrees(c: _Direction, b: _Direction) -> bool:
    """Does the passage's `b` say what the claim's `c` says (the same word kind and sign on the same thing)?"""
    same = bool(c.thing & b.thing) if c.thing else _same_thing(c, b)
    return bool(same) and c.kind == b.kind and c.sign == b.sign and not _reverses(c, b)


def _reversed_direction(claim: str, passage: Sequence[str]) -> bool:
    """A direction word of the claim against the passage's word for the same thing ("reduces accuracy" against
    "improves accuracy", "slows down" against "speeds up", "far worse than" against "better than"); the claim
    stands if the passage also says it the claim's way."""
    theirs = [d for sentence in passage for d in _directions(sentence)]
    for c in _directions(claim):
        if any(_reverses(c, b) for b in theirs) and not any(_agrees(c, b) for b in theirs):
            return True
    return False


# Numbers a text sets aside ("8 steps instead of 50", "down from 12 days").
_SET_ASIDE = re.compile(
    r"\b(?:instead of|rather than|down from|up from|no longer|not)\s+(?:\w+\s+){0,2}?(\d+(?:[.,]\d+)*)", re.IGNORECASE
)


_FROM_TO = re.compile(r"\bfrom\s+(\d+(?:[.,]\d+)*)\s*\S{0,12}?\s+to\s+(\d+(?:[.,]\d+)*)", re.IGNORECASE)


def _wrong_numbers(claim: str, basis: str, others: Sequence[str]) -> bool:
    """A number the passage sets aside ("instead of 50") stated as a fact, a change read backwards ("from 25 to 40"
    against "from 40 to 25"), or a number pinned on the other name of a sentence ("X reaches 85%, compared with
    62% for Y": "Y reaches 85%")."""
    passage = " ".join([basis, *others])
    aside = {m.group(1).replace(",", "") for m in _SET_ASIDE.finditer(passage)}
    held = numbers(_SET_ASIDE.sub(" ", passage))
    own_aside = {m.group(1).replace(",", "") for m in _SET_ASIDE.finditer(claim)}
    if (numbers(claim) - own_aside) & (aside - held):
        return True
    changes = {(a.replace(",", ""), b.replace(",", "")) for a, b in _FROM_TO.findall(passage)}
    for a, b in _FROM_TO.findall(claim):
        pair = (a.replace(",", ""), b.replace(",", ""))
        if pair not in changes and pair[::-1] in changes:
            return True
    basis_clauses = [(_subjects(c), numbers(c)) for c in _clauses(basis)]
    for clause in _clauses(claim):
        said = _subjects(clause)
        for number in numbers(clause):
            holders = [n for n, found in basis_clauses if number in found]
            # every clause holding the number is about another name, and the claim's name has a number of
            # its own in another clause of the same sentence
            if (
                holders
                and all(n and not n & said for n in holders)
                and any(n & said and found - {number} for n, found in basis_clauses)
            ):
                return True
    return False


def _subjects(text: str) -> set[str]:
    """The names of a text that can own a number (not "16GB" or "5.6M" themselves)."""
    return {n for n in names(text) if not n[0].isdigit()}


def contradicts(claim: str, basis: str, others: Sequence[str] = (), asked: frozenset[str] = frozenset()) -> bool:
    """Does the claim deny what its basis sentence asserts, or assert what the basis or another sentence of
    the passage denies ("challenge the narrative that a dedicated vector store is necessary")?

    Judged clause by clause (a denial speaks for its own clause: "does not rely on X and achieves Y"
    asserts Y), with direction words compared in both texts ("reduces accuracy" against "improves
    accuracy"), a "No, ..." answer against its own sentence (`asked`: the question's content words), and
    numbers the passage sets aside, reverses or gives to another name.

    Kept conservative (a false alarm drops a right answer): the claim's denial counts only against a
    clause of the basis that asserts every word it denies; a passage's denial counts only when the claim
    repeats most of what it denies and does not deny it too.
    """
    claim_words = content_words(claim)
    if any(_denies(scope, basis) and _same_subject(subject, basis) for subject, scope in denials_of(claim)):
        return True
    claim_denials = denials(claim, absences=True)  # "works without X" restates "needs no X"
    for sentence in (basis, *others):
        for scope in denials(sentence, absences=True):
            shared = scope & claim_words
            repeated = len(shared) >= 3 or (len(shared) >= 2 and len(shared) >= 0.6 * len(scope))
            if repeated and not any(scope & own for own in claim_denials):
                return True
    return (
        _answers_no_then_says_yes(claim, asked)
        or _reversed_direction(claim, [basis, *others])
        or _wrong_numbers(claim, basis, others)
    )
