"""rag.safety over the hostile test set (tests/data/hostile.jsonl) and the bundled corpus.

Each record of the hostile set has a `kind`, the `injected` sentences that must never reach the
model, and the `keep` sentences (research, including research *about* injections) that must.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.chunking import split_sentences
from rag.citations import verify
from rag.corpus import read_corpus
from rag.safety import (
    has_controls, instruction_match, normalise_for_matching, passage_sentences, strip_controls, terminal_safe,
)
from rag.types import Hit

DATA = Path(__file__).parent / "data"

HOSTILE = [json.loads(line) for line in (DATA / "hostile.jsonl").read_text(encoding="utf-8").splitlines()]
INJECTIONS = [r for r in HOSTILE if r["kind"].startswith("injection/")]
ESCAPES = [r for r in HOSTILE if r["kind"].startswith("escape/")]


def shown(abstract: str) -> str:
    return " ".join(passage_sentences(abstract))


@pytest.mark.parametrize("record", INJECTIONS, ids=[r["kind"] for r in INJECTIONS])
def test_injected_sentences_never_reach_the_model_and_the_research_around_them_does(record):
    text = normalise_for_matching(shown(record["abstract"]))
    for sentence in record["injected"]:
        assert normalise_for_matching(sentence)[:25] not in text, record["kind"]
    for sentence in record["keep"]:
        assert sentence in shown(record["abstract"]), record["kind"]


@pytest.mark.parametrize("record", INJECTIONS, ids=[r["kind"] for r in INJECTIONS])
def test_a_model_repeating_an_injection_gets_no_citation_for_it(record):
    # What the model is shown of the paper; it obeys the injection and writes the sentence back.
    passage = Hit("p:0", "p", record["title"], shown(record["abstract"]), 1.0)
    verified = verify(record["injected"][0], [passage])
    assert verified.citations == [] and verified.text == "", record["kind"]


def test_papers_about_instructions_assistants_and_jailbreaks_keep_every_sentence():
    benign = [r for r in HOSTILE if r["kind"].startswith("benign/")]
    assert benign
    for record in benign:
        assert passage_sentences(record["abstract"]) == split_sentences(record["abstract"]), record["title"]


def test_no_sentence_of_the_bundled_corpus_is_taken_for_an_instruction():
    papers = read_corpus(None).papers
    dropped = [s for p in papers for s in split_sentences(p.abstract) if instruction_match(s)]
    assert dropped == []


def test_matching_sees_through_homoglyphs_invisible_characters_and_compatibility_forms():
    assert normalise_for_matching("Ign\u043ere instructi\u03bfns") == "ignore instructions"  # Cyrillic o, Greek omicron
    assert normalise_for_matching("Ig\u200bno\u00adre\u2060 it") == "ignore it"  # zero-width space, soft hyphen, joiner
    assert normalise_for_matching("\uff29\uff27\uff2e\uff2f\uff32\uff25  \U0001d41a\U0001d41b") == "ignore ab"
    assert normalise_for_matching("\u201cquoted\u201d \u2014 x") == '"quoted" - x'


@pytest.mark.parametrize("raw, clean", [
    ("\x1b]0;pwned\x07Title", "Title"),                                      # OSC: window title, BEL-terminated
    ("\x1b]0;pwned\x1b\\Title", "Title"),                                    # OSC, ST-terminated
    ("a\x1b[2Jb\x1b[31mred\x1b[0m", "abred"),                                # CSI: clear screen, colours
    ("\x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),       # OSC 8 hyperlink: the target goes
    ("\u009b2Jx\u009d0;t\u009cy", "xy"),                                      # 8-bit C1 CSI and OSC
    ("\x1bcreset", "reset"),                                                 # ESC c (full reset)
    ("\x1b]0;never terminated", "0;never terminated"),                       # unterminated: ESC ] goes, text stays
    ("bell\x07 back\x08\x08 del\x7f", "bell back del"),
    ("\u202eevil\u202c \u2066iso\u2069", "evil iso"),                          # bidi override and isolate
    ("lone \ud800 surrogate", "lone \ufffd surrogate"),
    ("tab\tand\nnewline", "tab\tand\nnewline"),
    ("plain text, é 漢字 🙂", "plain text, é 漢字 🙂"),
])
def test_control_characters_and_escape_sequences_are_removed(raw, clean):
    assert strip_controls(raw) == clean
    assert "\x1b" not in terminal_safe(raw) and "\x07" not in terminal_safe(raw)


def test_has_controls_ignores_tabs_and_newlines():
    assert not has_controls("a\tb\nc")
    assert has_controls("a\x1b[2J") and has_controls("x\u202ey") and has_controls("\x00")
    assert strip_controls("a\tb\nc\r\nd", keep_newlines=False) == "a b c  d"


@pytest.mark.parametrize("record", ESCAPES, ids=[r["kind"] for r in ESCAPES])
def test_escape_records_show_no_control_characters_to_the_model(record):
    assert not has_controls(shown(record["abstract"]))
