"""Words, names, numbers and negation in English text: one definition shared by BM25, the citation
checks, sentence choice and follow-up handling, so changing one cannot silently change the other."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_STEMMER = None


def _stemmer():
    global _STEMMER
    if _STEMMER is None:
        import Stemmer

        _STEMMER = Stemmer.Stemmer("english")
    return _STEMMER


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stemmed words without English stop words (what BM25 indexes)."""
    import bm25s

    return bm25s.tokenize(texts, stopwords="en", stemmer=_stemmer(), return_ids=False, show_progress=False)


def content_words(text: str) -> set[str]:
    return set(tokenize([text])[0])


_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def numbers(text: str) -> set[str]:
    """The numbers a text states ("1,024" and "1024" are the same number)."""
    return {n.replace(",", "") for n in _NUMBER.findall(text)}


_WORD = re.compile(r"[A-Za-z0-9][\w\-+.]*[\w+]|[A-Za-z0-9]")


def ordered_names(text: str, known: frozenset[str] = frozenset()) -> list[str]:
    """Words that name something (SimCSE, Vim-S, GPT-3, UCF-101, OpenAI), in order: capitals inside,
    letters with digits, or a capitalised word.

    The first word of the text is skipped when it is merely capitalised ("The", "This"), unless it is
    one of the `known` names (an answer that opens with the name its question used: "Phenaki has ...").
    """
    out: list[str] = []
    for index, match in enumerate(_WORD.finditer(text)):
        word = match.group(0).rstrip(".")
        has_inner_capital = any(c.isupper() for c in word[1:])
        mixed = any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
        capitalised = word[:1].isupper() and (index > 0 or word in known)
        if (has_inner_capital or mixed or capitalised) and word not in out:
            out.append(word)
    return out


def names(text: str, known: frozenset[str] = frozenset()) -> set[str]:
    return set(ordered_names(text, known))


def acronyms(text: str) -> set[str]:
    """The stricter kind of name: capitals inside or letters with digits (not merely a capitalised word)."""
    return {n for n in names(text) if any(c.isupper() for c in n[1:]) or any(c.isdigit() for c in n)}


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def name_parts(name: str) -> list[str]:
    """A name's comparable parts: case, hyphenation and plural do not matter ("1.3M-parameter" ~ "1.3M parameters")."""
    return [_singular(p) for p in re.split(r"[\s\-/_]+", name.lower().strip(".")) if p]


def word_set(text: str) -> set[str]:
    """Every word of a text in `name_parts` form, and each hyphenated word also joined ("U-Net" -> u, net,
    unet), for matching names up to spelling variants."""
    out: set[str] = set()
    for word in _WORD.findall(text):
        parts = name_parts(word)
        out.update(parts)
        if len(parts) > 1:
            out.add("".join(parts))
    return out


def mentions(name: str, words: set[str]) -> bool:
    """Does a text (its `word_set`) mention `name`, up to case, hyphenation and plural ("UNet" ~ "U-Net")?"""
    parts = name_parts(name)
    return bool(parts) and (all(p in words for p in parts) or "".join(parts) in words)


# "256times256", "8.2times", "6400x6400", "20x", "3×3": a multiplication sign or "times" after a number
# (page dumps render "×" as a glued "times"), in one spelling on both sides of a comparison.
_TIMES = re.compile(r"(?<=\d)\s*(?:times\b|times(?=\d)|[x×](?=\d|\b))", re.IGNORECASE)


def unglue(text: str) -> str:
    """`text` with every "N times"/"NxM"/"N×M" spelled "N times M", so the forms compare equal."""
    return _TIMES.sub(" times ", text)


# LaTeX accents as arXiv abstracts write them: Fr\'echet, na\"ive, {\"o}, \c{c}.
_LATEX_ACCENT = re.compile(r"""\{?\\(?:['`^"~=.]\s*\{?([A-Za-z])\}?|[uvHc]\{([A-Za-z])\})\}?""")


def fold_accents(text: str) -> str:
    """`text` without accents, LaTeX's or Unicode's ("Fr\\'echet", "Fréchet" -> "Frechet")."""
    text = _LATEX_ACCENT.sub(lambda m: m.group(1) or m.group(2), text)
    if text.isascii():
        return text
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def comparable(text: str) -> str:
    """The spelling both sides of a citation check are compared in (see `unglue`, `fold_accents`)."""
    return unglue(fold_accents(text))


# An acronym a sentence defines for itself: "Channel Vision Transformers (CVT)".
_DEFINED = re.compile(r"((?:[\w-]+\s+){1,8})\(([A-Z][A-Za-z]{1,7})\)")


def defined_acronyms(text: str) -> set[str]:
    """Acronyms the text spells out itself: the initials of the words just before the parenthesis."""
    out = set()
    for match in _DEFINED.finditer(text):
        words, acronym = re.split(r"[\s-]+", match.group(1).strip()), match.group(2)
        letters = [c for c in acronym if c.isupper()] if sum(c.isupper() for c in acronym) >= 2 else list(acronym)
        initials = [w[0].upper() for w in words[-len(letters) :]] if len(words) >= len(letters) else []
        if initials == [c.upper() for c in letters]:
            out.add(acronym)
    return out


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
    text = re.sub(r"\bunnecessar(?:y|ily)\b", "not necessary", text, flags=re.IGNORECASE)
    scopes = []
    cues = [_DENIAL, _ABSENCE] if absences else [_DENIAL]
    for clause in _CLAUSE.findall(text):
        for cue in (c for pattern in cues for c in pattern.finditer(clause)):
            after = _SCOPE_END.split(clause[cue.end() :], maxsplit=1)[0]
            after = " ".join(after.split()[:12])
            if scope := content_words(after):
                scopes.append(scope)
    return scopes


def contradicts(claim: str, basis: str, others: Sequence[str] = ()) -> bool:
    """Does the claim deny what its basis sentence asserts, or assert what the basis or another sentence of
    the passage denies ("challenge the narrative that a dedicated vector store is necessary")?

    Kept conservative (a false alarm drops a right answer): the claim's denial counts only against a
    basis without denials of its own that holds every word it denies; a passage's denial counts only
    when the claim repeats most of what it denies and does not deny it too.
    """
    claim_words, claim_denials = content_words(claim), denials(claim)
    if not denials(basis) and any(scope <= content_words(basis) for scope in claim_denials):
        return True
    claim_denials = denials(claim, absences=True)  # "works without X" restates "needs no X"
    for sentence in (basis, *others):
        for scope in denials(sentence, absences=True):
            shared = scope & claim_words
            repeated = len(shared) >= 3 or (len(shared) >= 2 and len(shared) >= 0.6 * len(scope))
            if repeated and not any(scope & own for own in claim_denials):
                return True
    return False


_INTRODUCES = re.compile(
    r"\b(?:propose|proposes|present|presents|introduce|introduces|call|called|name|named|dub|dubbed|term|termed|"
    r"coin|coined|denote|denoted|develop|develops|release|releases|build|builds)\b"
)


def title_name(title: str) -> str | None:
    """The short name a title leads with ("SimMIM: A Simple Framework ..." -> "SimMIM")."""
    lead, colon, _ = title.partition(":")
    return lead.strip() if colon and 0 < len(lead.split()) <= 4 else None


_NOT_NAMES = {"A", "An", "The", "We", "Our", "This", "These", "It", "In", "To", "For", "On", "Its"}


def introduced_names(abstract: str) -> list[str]:
    """Names the abstract introduces ("we propose X", "dubbed X", "called X"), in order: the first
    capitalised or acronym-like word among the next four."""
    out: list[str] = []
    for sentence in re.split(r"(?<=[.!?])\s+", abstract):
        for match in _INTRODUCES.finditer(sentence):
            for word in _WORD.findall(sentence[match.end() : match.end() + 80])[:4]:
                word = word.rstrip(".")
                capital = word[:1].isupper() or any(c.isupper() for c in word[1:])
                mixed = any(c.isdigit() for c in word) and any(c.isalpha() for c in word)
                if (capital or mixed) and word not in _NOT_NAMES and len(word) >= 2:
                    if word not in out:
                        out.append(word)
                    break
    return out


def own_names(title: str, abstract: str) -> set[str]:
    """The names a paper gives to what it introduces: its title's lead and the names its abstract introduces."""
    lead = title_name(title)
    return ({lead} if lead else set()) | set(introduced_names(abstract))


def name_key(name: str) -> str:
    """A name as looked up: case, hyphenation and plural do not matter."""
    return " ".join(name_parts(name))


def name_spans(text: str, longest: int = 4) -> list[str]:
    """Runs of up to `longest` name-like words ("Vision Mamba", "SimMIM"): what a text may call a paper."""
    asked = names(text)
    words = [w.rstrip(".") for w in _WORD.findall(text)]
    return [
        " ".join(words[i : i + n])
        for n in range(1, longest + 1)
        for i in range(len(words) - n + 1)
        if all(w in asked for w in words[i : i + n])
    ]


def identity_names(title: str, abstract: str) -> set[str]:
    """The names a paper goes by: its title's lead, the acronym-like names of its title, the names its abstract
    introduces."""
    lead = title_name(title)
    return ({lead} if lead else set()) | {n for n in acronyms(title) if len(n) >= 2} | set(introduced_names(abstract))
