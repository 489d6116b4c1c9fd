"""Words, names, numbers and negation in English text: one definition shared by BM25, the citation
checks, sentence choice and follow-up handling, so changing one cannot silently change the other."""

from __future__ import annotations

import re
import unicodedata

# Abbreviations after which a full stop does not end a sentence.
_ABBREVIATIONS = "".join(
    rf"(?<!\b{a}\.)" for a in (r"e\.g", r"i\.e", "et al", "vs", "cf", "Fig", "Eq", "etc", "approx", "No", "resp")
)


# The end-punctuation test comes first: it fails at almost every position, so the abbreviation
# tests (zero-width, at the same position, hence in any order) run only after a full stop.
_SENTENCE_END = re.compile(r"(?<=[.!?])" + _ABBREVIATIONS + r"[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")


def split_sentences(text: str) -> list[str]:
    """Split an abstract into sentences (full stop, ! or ? followed by a capital or digit)."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


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


# "one" is left out: it is mostly a pronoun or an article ("one of the", "the one that").
_NUMBER_WORDS = {
    word: str(value)
    for value, word in enumerate(
        [
            "zero",
            "_",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
            "twenty",
        ]
    )
    if word != "_"
} | {"thirty": "30", "forty": "40", "fifty": "50", "hundred": "100", "thousand": "1000"}


_NUMBER_WORD = re.compile(r"\b(" + "|".join(_NUMBER_WORDS) + r")\b", re.IGNORECASE)


def numbers_stated(text: str) -> set[str]:
    """The numbers a text states in digits or in words ("eleven" and "11" are the same number)."""
    return numbers(text) | {_NUMBER_WORDS[w.lower()] for w in _NUMBER_WORD.findall(text)}


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


_INTRODUCES = re.compile(
    r"\b(?:propose|proposes|present|presents|introduce|introduces|call|called|name|named|dub|dubbed|term|termed|"
    r"coin|coined|denote|denoted|develop|develops|release|releases|build|builds)\b"
)


# A question that asks for a quantity: "how many", "by what factor", "what top-1 accuracy/FID/rank ...".
_MEASURE = (
    r"scores?|accurac(?:y|ies)|rates?|ranks?|sizes?|speed-?ups?|fids?|psnr|ssim|bleu|rouge|miou|map|ndcg\S*"
    r"|recall\S*|precision|f1|auc|errors?|perplexit(?:y|ies)|latenc(?:y|ies)|throughput|length|dimensions?"
    r"|ratios?|counts?|budgets?|percentages?|numbers?|margins?|gains?|values?|factors?|win[\s-]?rates?"
)


_ASKS_NUMBER = re.compile(
    r"\bhow\s+(?:many|much|large|small|long|fast|big|wide|deep|high|low|often|far)\b"
    r"|\bby\s+(?:what|how)\s+(?:factor|margin|percentage|amount|much)\b"
    r"|(?:^|[.?!]\s+)when\b|\b(?:what|which|in\s+which)\s+year\b"
    rf"|\bwhat\s+(?:[\w@./+-]+\s+){{0,4}}?(?:{_MEASURE})\b",
    re.IGNORECASE,
)


def asks_for_number(question: str) -> bool:
    """Does the question ask for a quantity or a date (an answer without a number cannot be one)?"""
    return bool(_ASKS_NUMBER.search(question))


_ASKS_WHO = re.compile(r"\bwho(?:m|se)?\b", re.IGNORECASE)


def asks_who(question: str) -> bool:
    """Does the question ask for a person or a group (which abstracts seldom name)?"""
    return bool(_ASKS_WHO.search(question))


def capitalise(text: str) -> str:
    """`text` with its first letter in upper case (the rest as written: "the paper “X”" -> "The paper “X”")."""
    return text[:1].upper() + text[1:]


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
