"""LaTeX in a field value (BibTeX titles, abstracts and authors) as the plain text it stands for:
accents as letters (G{\\"o}del -> Gödel), formatting macros dropped, math kept as text ($\\alpha$ -> α)."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

from rag.corpus.records import clean

if TYPE_CHECKING:
    from pylatexenc.latex2text import LatexNodes2Text

# A bare % in a field value is a percent sign to whoever wrote it ("50% fewer"); to LaTeX it would
# start a comment and swallow the rest of the line.
_BARE_PERCENT = re.compile(r"(?<!\\)%")
# References point outside the abstract: dropped with the space before them ("as in~\cite{x}." -> "as in.")
_REFERENCE = re.compile(r"[\s~]*\\(?:cite[pt]?|ref|eqref|label)\*?(?:\[[^\]]*\])*\{[^{}]*\}")


def latex_to_text(value: str) -> str:
    """`value` as one line of text."""
    if "\\" not in value and "$" not in value:  # no macro, no math: braces only group (the common case)
        return clean(value.replace("{", "").replace("}", "").replace("~", " "))
    try:
        text = _converter().latex_to_text(_BARE_PERCENT.sub(r"\\%", _REFERENCE.sub("", value)))
    except Exception:  # pylatexenc fails on some malformed macros (\href without its text): keep the words
        text = _plain(value)
    return clean(text)


@cache
def _converter() -> LatexNodes2Text:
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    context = get_default_latex_context_db()
    # pylatexenc writes the logos as nothing
    context.add_context_category(
        "logos", prepend=True, macros=[MacroTextSpec("LaTeX", "LaTeX"), MacroTextSpec("TeX", "TeX")]
    )
    return LatexNodes2Text(latex_context=context, math_mode="text")


def _plain(value: str) -> str:
    value = re.sub(r"\\[a-zA-Z]+\s*\{([^{}]*)\}", r"\1", value)  # \emph{x} -> x
    return value.replace("{", "").replace("}", "").replace("\\&", "&").replace("\\%", "%").replace("~", " ")
