"""rag.answer.followups without a model: the rewrite of a follow-up, the question without a subject, the author question."""

from __future__ import annotations

import pytest

from rag import Answer, Citation, Paper
from rag.answer.followups import asks_for_authors, needs_subject, standalone

FSA = Citation(key=1, paper_id="fsa", title="Faster Segment Anything: Towards Lightweight SAM", text="...")
PAPER = Paper(title=FSA.title, abstract="We make SAM faster by distilling its encoder.", source="x.jsonl")
EARLIER = Answer(question="How does MobileSAM make SAM faster?", text="It distils the encoder [1].", citations=[FSA])


@pytest.mark.parametrize(
    ("question", "searched"),
    [
        ("What did it compare it against?", "What did Faster Segment Anything compare it against?"),
        ("What did they compare them against?", "What did Faster Segment Anything compare them against?"),
        ("How does it compare with its predecessor?", "How does Faster Segment Anything compare with its predecessor?"),
        ("Who are the authors?", "Who are the authors of Faster Segment Anything?"),
        ("What is its accuracy?", "What is Faster Segment Anything's accuracy?"),
    ],
)
def test_a_follow_up_names_the_paper_once(question, searched):
    assert standalone(question, [EARLIER], {"fsa": PAPER}).text == searched


@pytest.mark.parametrize(
    "question",
    ["what about its accuracy?", "How do they train it?", "Who wrote the paper?", "What does this method improve?"],
)
def test_a_first_question_that_refers_to_nothing_asks_which_paper(question):
    unresolved = needs_subject(question, [])
    assert unresolved is not None and unresolved.clarification.startswith("Which paper do you mean?")
    assert needs_subject(question, [EARLIER]) is None  # with a conversation it is a follow-up


@pytest.mark.parametrize(
    "question",
    [
        "How does SimMIM compare its results with MAE?",  # names its subject
        "What is its accuracy on ImageNet?",  # names something retrieval can use
        "Is it true that masking helps pre-training?",  # an "it" that refers to nothing
        "Which method is best for long documents and why is it better?",  # "it" points back into the question
        "Which method speeds up generation by guessing several outputs at once, and what speedup did it reach?",
    ],
)
def test_a_question_that_describes_its_subject_is_searched(question):
    assert needs_subject(question, []) is None


@pytest.mark.parametrize(
    "question",
    [
        "Who wrote the paper about surface codes on superconducting qubits?",
        "Who wrote the paper on protein folding?",
        "How fast is the method that prunes attention heads?",
        "Which dataset did the study on sleep staging use?",
    ],
)
def test_a_first_question_that_says_what_it_refers_to_is_searched(question):
    assert needs_subject(question, []) is None


@pytest.mark.parametrize(
    ("question", "asks"),
    [
        ("who wrote it?", True),
        ("Who are the authors of SimMIM?", True),
        ("Who is the first author?", True),
        ("What are its authors?", True),
        ("What did the authors of SimMIM propose?", False),
        ("Who uses it?", False),
        ("Who are the users of SAM?", False),
    ],
)
def test_author_questions(question, asks):
    assert asks_for_authors(question) is asks
