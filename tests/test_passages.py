"""What the model is shown: the sentences of the top papers that bear on the question, within a token budget."""

from __future__ import annotations

from rag.answer.passages import build_passages, sentence_scores
from rag.settings import AnswerSettings, Settings
from rag.testing import ScriptedGenerator
from rag.types import Hit, Paper


class _Catalog:
    def __init__(self, papers: dict[str, Paper]):
        self.papers = papers

    def get_papers(self, ids):
        return {i: self.papers[i] for i in ids if i in self.papers}


def _paper(title: str, sentences: list[str]) -> Paper:
    return Paper(title=title, abstract=" ".join(sentences), source="test")


A = _paper(
    "Graph forecasting of traffic",
    [
        "Traffic forecasting matters for cities.",
        "We propose a graph network over road sensors.",
        "It cuts the forecasting error on the highway benchmark by 12 percent.",
        "Code is released.",
    ],
)
B = _paper(
    "Weather nowcasting",
    [
        "Radar echoes drift.",
        "Our model forecasts rain on a road network of sensors two hours ahead.",
        "It runs on one GPU.",
    ],
)
C = _paper("Protein folding", ["Proteins fold.", "We predict structures from sequences."])
QUESTION = "By how much does the graph network cut the forecasting error on the highway benchmark?"


def _build(budget: int, per_paper: int = 2, papers=(A, B, C), whole_top: int = 0, question=QUESTION, embedder=None):
    catalog = _Catalog({p.paper_id: p for p in papers})
    hits = [Hit(f"{p.paper_id}:0", p.paper_id, p.title, p.abstract, 1.0 - i / 10) for i, p in enumerate(papers)]
    # (model_copy skips the validation that keeps users' budgets >= 50: small numbers keep this readable)
    answer = AnswerSettings().model_copy(
        update={"context_tokens": budget, "context_sentences": per_paper, "context_whole_top_tokens": whole_top}
    )
    settings = Settings().model_copy(update={"answer": answer})
    # The scripted generator counts words as tokens.
    return build_passages(question, hits, catalog, ScriptedGenerator(["x"]), settings, embedder)


def test_the_sentence_holding_the_answer_scores_highest():
    sentences = A.abstract.split(". ")
    scores = sentence_scores(QUESTION, sentences)
    assert max(range(len(scores)), key=scores.__getitem__) == 2


def test_passages_fit_the_token_budget_and_keep_each_papers_best_sentence_first():
    passages = _build(budget=40)
    words = sum(len(f"[0] {p.title}".split()) + len(p.text.split()) for p in passages)
    assert words <= 40
    assert passages[0].paper_id == A.paper_id
    assert "12 percent" in passages[0].text
    # Each shown paper got its best sentence before any paper got a second one.
    assert [p.paper_id for p in passages][:2] == [A.paper_id, B.paper_id]
    assert passages[1].text.startswith("Our model forecasts rain")


def test_a_larger_budget_adds_second_sentences_in_the_abstracts_order():
    passages = _build(budget=400)
    first = passages[0].text
    assert first.index("We propose a graph network") < first.index("12 percent")
    assert all(len(p.text.split(". ")) <= 2 for p in passages)


def test_the_top_paper_is_shown_even_when_its_best_sentence_exceeds_the_budget():
    passages = _build(budget=5)
    assert [p.paper_id for p in passages] == [A.paper_id]
    assert "12 percent" in passages[0].text


def test_the_top_paper_is_shown_whole_when_it_costs_little_enough():
    passages = _build(budget=400, whole_top=100)
    assert passages[0].text == A.abstract  # every sentence, in order, past the two a paper gets otherwise
    assert all(len(p.text.split(". ")) <= 2 for p in passages[1:])
    assert [p.paper_id for p in passages] == [A.paper_id, B.paper_id, C.paper_id]
    # too long for the whole-abstract allowance (or the budget): its best sentences, as before
    assert _build(budget=400, whole_top=10)[0].text != A.abstract
    assert _build(budget=20, whole_top=100)[0].text != A.abstract


class _MeaningDouble:
    """Sentences about a change in accuracy are close to a question about a drop in error, whatever their words."""

    CONCEPT = {"accurate", "accuracy", "error", "errors", "mistakes"}

    def _vector(self, text):
        import numpy as np

        words = {w.strip(".,?").lower() for w in text.split()}
        return np.array([1.0 if words & self.CONCEPT else 0.0, 0.3], dtype=np.float32)

    def encode(self, texts, progress=None):
        import numpy as np

        return np.stack([self._vector(t) for t in texts])

    def encode_query(self, text):
        return self._vector(text)


def test_a_sentence_that_answers_in_other_words_is_chosen_by_meaning():
    d = _paper(
        "Road sensing", ["We study roads in cities.", "Predictions became 12 percent more accurate.", "Data is public."]
    )
    question = "How much did the error drop?"  # no word of the answering sentence
    by_words = _build(budget=12, per_paper=1, papers=(d,), question=question)
    assert "12 percent" not in by_words[0].text
    by_meaning = _build(budget=12, per_paper=1, papers=(d,), question=question, embedder=_MeaningDouble())
    assert "12 percent" in by_meaning[0].text
