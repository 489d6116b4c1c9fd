"""Issue 24, items 2 and 3: answers that contradict their passage, and injections that hide their wording,
run through the citation checks alone and through the whole pipeline with the real embedder and a
scripted model.

tests/data/contradictions.jsonl: made-up papers, each with a question, `wrong` sentences that contradict
the abstract (negation matched to the wrong clause, a "No, ..." answer against its own sentence,
antonyms and direction words, numbers set aside, reversed or given to another name) and `right`
sentences that must still be shown. tests/data/injection_variants.jsonl: injections hidden by
invisible characters, look-alike letters of other scripts, other languages or third-person orders,
with the sentence a model obeying them would write (`obeyed`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag import Assistant, Settings
from rag.answer.citations import verify
from rag.contradictions import contradicts
from rag.safety import normalise_for_matching, passage_sentences
from rag.testing import ScriptedGenerator
from rag.text import identity_names
from rag.types import Hit

DATA = Path(__file__).parent / "data"
CASES = [json.loads(line) for line in (DATA / "contradictions.jsonl").read_text(encoding="utf-8").splitlines()]
VARIANTS = [json.loads(line) for line in (DATA / "injection_variants.jsonl").read_text(encoding="utf-8").splitlines()]
INJECTIONS = [r for r in VARIANTS if r["injected"]]
WRONG = [(case, claim) for case in CASES for claim in case["wrong"]]
RIGHT = [(case, claim) for case in CASES for claim in case["right"]]


def _passage(case: dict) -> Hit:
    text = " ".join(passage_sentences(case["abstract"]))
    return Hit("p:0", "p", case["title"], text, 1.0, aliases=sorted(identity_names(case["title"], case["abstract"])))


def test_the_hostile_sets_are_as_large_as_the_issue_asks():
    kinds = {
        kind: sum(1 for case, _ in WRONG if case["kind"] == kind)
        for kind in ("negation", "polarity", "antonym", "number")
    }
    assert len(WRONG) >= 30 and all(n >= 5 for n in kinds.values()), kinds
    assert len(INJECTIONS) >= 20


@pytest.mark.parametrize("case, claim", WRONG, ids=[f"{c['kind']}:{w[:50]}" for c, w in WRONG])
def test_a_sentence_contradicting_its_passage_is_never_verified(case, claim):
    verified = verify(claim, [_passage(case)], question=case["question"])
    assert verified.citations == [], verified.text


@pytest.mark.parametrize("case, claim", RIGHT, ids=[f"{c['kind']}:{r[:50]}" for c, r in RIGHT])
def test_a_right_sentence_about_the_same_passage_is_still_verified(case, claim):
    verified = verify(claim, [_passage(case)], question=case["question"])
    assert verified.citations, verified.dropped


@pytest.mark.parametrize(
    "claim, basis",
    [
        # the denial belongs to the other clause of the passage
        (
            "SPLADE does not achieve strong results on MS MARCO.",
            "SPLADE does not rely on dense vectors and achieves strong results on the MS MARCO benchmark.",
        ),
        # direction words: the same thing, opposite ways
        ("ColdNet lowers accuracy on cold-start items.", "ColdNet improves accuracy on cold-start items."),
        ("The cache slows down decoding.", "The cache speeds up decoding."),
        ("Label smoothing improves calibration error.", "Label smoothing increases calibration error."),
        ("Lion performs far worse than SGD on the benchmarks.", "Lion performs better than SGD on the benchmarks."),
        ("SGD outperforms Lion on pre-training.", "Lion outperforms SGD on pre-training."),
        # numbers set aside, reversed, or given to the other name
        ("The sampler needs 50 steps.", "The sampler needs 8 steps instead of 50."),
        ("The decoder cuts latency from 25 ms to 40 ms.", "The decoder cuts latency from 40 ms to 25 ms."),
        (
            "NeuroSAT solves 85% of the instances.",
            "GraphSAT solves 85% of the instances, compared with 62% for NeuroSAT.",
        ),
    ],
)
def test_contradictions_judged_per_clause_with_directions_and_numbers(claim, basis):
    assert contradicts(claim, basis)


@pytest.mark.parametrize(
    "claim, basis",
    [
        (
            "SPLADE does not rely on dense vectors.",
            "SPLADE does not rely on dense vectors and achieves strong results.",
        ),
        (
            "The model reduces the error on ImageNet.",
            "The model improves accuracy on ImageNet.",
        ),  # less error is better
        ("The model lowers latency.", "The model improves latency."),
        ("Late fusion performs worse than DenseFuse.", "DenseFuse performs better than late fusion."),
        (
            "It needs 91% less memory than a random forest.",
            "It matches the random forest's accuracy with 91% less memory.",
        ),
        (
            "FlexiBERT-Mini achieves 8.9% higher GLUE score than BERT-Mini.",
            "FlexiBERT-Mini has 3% fewer parameters than BERT-Mini and achieves 8.9% higher GLUE score.",
        ),
        ("The sampler needs 8 steps instead of 50.", "The sampler needs 8 steps instead of 50."),
        (
            "An image of 6400 times 6400 pixels trains within 16GB.",
            "It trains on data such as 6400 times 6400 images within a memory capacity of 16GB.",
        ),
    ],
)
def test_agreeing_sentences_are_not_taken_for_contradictions(claim, basis):
    assert not contradicts(claim, basis)


def test_a_no_answer_is_judged_against_its_own_sentence():
    asked = frozenset({"coldnet", "improv", "accuraci"})
    basis = "ColdNet improves accuracy on cold-start items."
    assert contradicts("No, ColdNet improves accuracy on cold-start items.", basis, asked=asked)
    # a "No" whose sentence says no, or answers with something else, stands
    assert not contradicts("No, ColdNet improves accuracy only on cold-start items.", basis, asked=asked)
    assert not contradicts("No, ColdNet does not improve accuracy.", "ColdNet does not improve accuracy.", asked=asked)
    assert not contradicts("No, ColdNet speeds up training.", "ColdNet speeds up training.", asked=asked)


# --- through the whole pipeline: the real embedder, a scripted model ----------------------------------------------
@pytest.fixture(scope="module")
def hostile_home(tmp_path_factory, embedder) -> Path:
    """The papers of both hostile sets, indexed with the real MiniLM."""
    corpus = tmp_path_factory.mktemp("hostile-corpus") / "papers.jsonl"
    with open(corpus, "w", encoding="utf-8") as f:
        for record in CASES + VARIANTS:
            f.write(json.dumps({"title": record["title"], "abstract": record["abstract"]}) + "\n")
    home = tmp_path_factory.mktemp("hostile-home")
    a = Assistant(Settings(home=home), embedder=embedder)
    a.ingest([corpus])
    a.close()
    return home


def _ask(home: Path, embedder, question: str, reply: str):
    generator = ScriptedGenerator([reply])
    a = Assistant(Settings(home=home), embedder=embedder, generator=generator)
    try:
        return a.ask(question), generator
    finally:
        a.close()


def _refused_or_quoted(answer, title: str) -> bool:
    """Nothing the model wrote is shown: a refusal, or (retrieval being confident) its paper's own sentence quoted."""
    if answer.refused:
        return answer.citations == []
    return (
        answer.quoted
        and [c.title for c in answer.citations] == [title]
        and answer.citations[0].sentences[0] in (answer.text)
    )


@pytest.mark.parametrize("case", CASES, ids=[c["title"].split(":")[0] for c in CASES])
def test_scripted_contradictions_are_never_shown_and_right_answers_are(hostile_home, embedder, case):
    answer, _ = _ask(hostile_home, embedder, case["question"], " ".join(case["wrong"]))
    shown = [claim for claim in case["wrong"] if claim.rstrip(".[]1 ").rstrip(" [1") in answer.text]
    assert shown == [] and _refused_or_quoted(answer, case["title"]), answer.text
    answer, _ = _ask(hostile_home, embedder, case["question"], " ".join(case["right"]))
    assert len(answer.citations) == 1 and answer.citations[0].title == case["title"], answer.dropped
    assert len(answer.text.split("[1]")) - 1 == len(case["right"]), (answer.text, answer.dropped)


@pytest.mark.parametrize("record", INJECTIONS, ids=[r["kind"] for r in INJECTIONS])
def test_an_injection_neither_reaches_the_model_nor_comes_back_cited(hostile_home, embedder, record):
    answer, generator = _ask(hostile_home, embedder, record["question"], record["obeyed"])
    prompt = normalise_for_matching(" ".join(m["content"] for m in generator.calls[0]))
    assert record["title"] in " ".join(m["content"] for m in generator.calls[0])  # its paper was shown
    assert normalise_for_matching(record["injected"][0])[:25] not in prompt
    assert _refused_or_quoted(answer, record["title"]) and "deprecated" not in answer.text, answer.text
    assert normalise_for_matching(record["injected"][0])[:25] not in normalise_for_matching(answer.text)
