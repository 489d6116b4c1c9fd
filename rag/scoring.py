"""How `rag eval` scores: a QA file's items, the rank of the gold paper, whether the expected answer
was shown to the model and is in its answer, citation precision and recall, refusals, and the
summaries per question type."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from rag.errors import CorpusError
from rag.types import Answer, Citation, Hit, normalise_text

if TYPE_CHECKING:
    pass


# ask(question, history) -> the answer; history holds the answers to the earlier questions.
Ask = Callable[[str, list[Answer]], Answer]


# progress(stage, advance, total): stage is "answers" or "naive_rag"; advance counts questions.
EvalProgress = Callable[[str, int, int], None]


class QAItem(BaseModel):
    id: str
    type: str
    question: str
    gold_titles: list[str] = Field(default_factory=list)
    answer_any: list[str] = Field(default_factory=list)
    history: list[str] = Field(default_factory=list)

    @property
    def answerable(self) -> bool:
        return bool(self.gold_titles)


def load_qa(path: Path | str) -> list[QAItem]:
    items = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            items.append(QAItem.model_validate_json(line))
        except ValueError as exc:
            raise CorpusError(f"{path}:{number}: not a QA item: {str(exc).splitlines()[0]}") from exc
    return items


class RetrievalScores(BaseModel):
    n: int
    top1: float
    top5: float
    mrr: float


def _gold_rank(hits: Sequence[Hit], gold_titles: Iterable[str]) -> int | None:
    gold = {normalise_text(t) for t in gold_titles}
    for rank, hit in enumerate(hits, start=1):
        if normalise_text(hit.title) in gold:
            return rank
    return None


def score_retrieval(ranks: Sequence[int | None]) -> RetrievalScores:
    n = len(ranks)
    if n == 0:
        return RetrievalScores(n=0, top1=0.0, top5=0.0, mrr=0.0)
    return RetrievalScores(
        n=n,
        top1=sum(1 for r in ranks if r == 1) / n,
        top5=sum(1 for r in ranks if r is not None and r <= 5) / n,
        mrr=sum(1.0 / r for r in ranks if r) / n,
    )


def evaluate_retrieval(items: Sequence[QAItem], search: Callable[[str], list[Hit]]) -> dict[str, RetrievalScores]:
    """Scores overall and per type, on answerable items; follow-ups use their question alone."""
    ranks_by_type: dict[str, list[int | None]] = {}
    for item in items:
        if not item.answerable:
            continue
        rank = _gold_rank(search(item.question), item.gold_titles)
        ranks_by_type.setdefault(item.type, []).append(rank)
    out = {"all": score_retrieval([r for ranks in ranks_by_type.values() for r in ranks])}
    out.update({t: score_retrieval(r) for t, r in sorted(ranks_by_type.items())})
    return out


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def dumps(obj: object) -> str:
    return json.dumps(obj, indent=2, default=lambda o: o.model_dump() if hasattr(o, "model_dump") else str(o))


class AnswerRecord(BaseModel):
    """One asked question and how its answer scored."""

    id: str
    type: str
    question: str
    standalone_question: str | None = None  # what was searched (a follow-up resolved with its history)
    answer: str
    raw_answer: str = ""
    refusal_reason: str | None = None
    dropped: list[str] = Field(default_factory=list)  # "reason: sentence" for each sentence not shown
    refused: bool
    quoted: bool = False  # the answer quotes a passage sentence: none of the model's was supported
    hit: bool | None  # contains an answer_any string (answerable items only)
    cited_titles: list[str]
    cited_gold: int
    gold_cited: int  # gold papers that were cited
    gold_total: int
    retrieve_s: float
    first_token_s: float | None
    total_s: float
    prompt_tokens: int
    completion_tokens: int
    gold_shown: bool | None = None  # a gold paper was among the passages the model was shown
    answer_shown: bool | None = None  # an answer_any string was in them (titles and chosen sentences)


class AnswerScores(BaseModel):
    n: int
    answer_hit_rate: float | None = None  # answerable items whose answer holds an answer_any string
    citation_precision: float | None = None  # cited papers that are gold (over all citations)
    citation_recall: float | None = None  # gold papers cited (over answerable items' gold papers)
    refusal_accuracy: float | None = None  # unanswerable items refused
    false_refusals: float | None = None  # answerable items refused
    median_first_token_s: float | None = None
    median_total_s: float | None = None
    p95_total_s: float | None = None


class StageScores(BaseModel):
    """Where answerable items are lost, stage by stage: the gold paper among the papers the model is
    shown (`context_passages` of the top hits), an expected answer inside the text it is shown, and
    the final answer holding it (None when no model ran: `rag eval --context-only`)."""

    n: int
    gold_shown: float
    answer_shown: float
    hit: float | None = None


def _shown(item: QAItem, passages: Sequence[Hit] | Sequence[Citation]) -> tuple[bool, bool]:
    """(a gold paper is among `passages`, an expected answer is in their titles or text)."""
    gold = {normalise_text(t) for t in item.gold_titles}
    text = " ".join(f"{p.title} {p.text}" for p in passages).lower()
    return (
        any(normalise_text(p.title) in gold for p in passages),
        any(a.lower() in text for a in item.answer_any),
    )


def summarise_stages(rows: Sequence[tuple[str, bool, bool, bool | None]]) -> dict[str, StageScores]:
    """Stage scores overall and per type from (type, gold shown, answer shown, hit) of answerable items."""

    def scores(group: Sequence[tuple[str, bool, bool, bool | None]]) -> StageScores:
        hits = [h for *_, h in group if h is not None]
        return StageScores(
            n=len(group),
            gold_shown=sum(g for _, g, _, _ in group) / len(group),
            answer_shown=sum(a for _, _, a, _ in group) / len(group),
            hit=sum(hits) / len(hits) if hits else None,
        )

    by_type: dict[str, list[tuple[str, bool, bool, bool | None]]] = {}
    for row in rows:
        by_type.setdefault(row[0], []).append(row)
    out = {"all": scores(rows)} if rows else {}
    out.update({t: scores(group) for t, group in sorted(by_type.items())})
    return out


# shown(question, history) -> the passages the model would be shown for it (no model call)
Shown = Callable[[str, list[Answer]], list[Hit]]


def evaluate_context(items: Sequence[QAItem], shown: Shown) -> dict[str, StageScores]:
    """The first two stages without a model: what each answerable question would show it. A follow-up's
    earlier questions stand for answers that cite the first passage they were shown."""
    rows = []
    for item in items:
        if not item.answerable:
            continue
        history: list[Answer] = []
        for question in item.history:
            first = shown(question, list(history))[:1]
            history.append(
                Answer(
                    question=question,
                    text="",
                    citations=[Citation(key=1, paper_id=h.paper_id, title=h.title, text=h.text) for h in first],
                )
            )
        gold, answer = _shown(item, shown(item.question, history))
        rows.append((item.type, gold, answer, None))
    return summarise_stages(rows)


def score_answer(item: QAItem, answer: Answer) -> AnswerRecord:
    gold = {normalise_text(t) for t in item.gold_titles}
    cited = [c.title for c in answer.citations]
    cited_keys = {normalise_text(t) for t in cited}
    text = answer.text.lower()
    hit = gold_shown = answer_shown = None
    if item.answerable:
        hit = (not answer.refused) and any(a.lower() in text for a in item.answer_any)
        gold_shown, answer_shown = _shown(item, answer.passages)
    return AnswerRecord(
        id=item.id,
        type=item.type,
        question=item.question,
        standalone_question=answer.standalone_question,
        answer=answer.text,
        raw_answer=answer.raw_text,
        dropped=[f"{d.reason}: {d.text}" for d in answer.dropped],
        refusal_reason=answer.refusal_reason,
        refused=answer.refused,
        quoted=answer.quoted,
        hit=hit,
        cited_titles=cited,
        cited_gold=sum(1 for t in cited_keys if t in gold),
        gold_cited=len(gold & cited_keys),
        gold_total=len(gold),
        retrieve_s=answer.timings.retrieve_s,
        first_token_s=answer.timings.first_token_s,
        total_s=answer.timings.total_s,
        prompt_tokens=answer.prompt_tokens,
        completion_tokens=answer.completion_tokens,
        gold_shown=gold_shown,
        answer_shown=answer_shown,
    )


def summarise_answers(records: Sequence[AnswerRecord]) -> AnswerScores:
    answerable = [r for r in records if r.hit is not None]
    unanswerable = [r for r in records if r.hit is None]
    citations = sum(len(r.cited_titles) for r in records)
    gold_total = sum(r.gold_total for r in answerable)
    generated = [r for r in records if r.first_token_s is not None]
    first_tokens = [r.first_token_s for r in generated if r.first_token_s is not None]
    return AnswerScores(
        n=len(records),
        answer_hit_rate=sum(bool(r.hit) for r in answerable) / len(answerable) if answerable else None,
        citation_precision=sum(r.cited_gold for r in records) / citations if citations else None,
        citation_recall=sum(r.gold_cited for r in answerable) / gold_total if gold_total else None,
        refusal_accuracy=sum(r.refused for r in unanswerable) / len(unanswerable) if unanswerable else None,
        false_refusals=sum(r.refused for r in answerable) / len(answerable) if answerable else None,
        median_first_token_s=median(first_tokens) if generated else None,
        median_total_s=median([r.total_s for r in generated]) if generated else None,
        p95_total_s=percentile([r.total_s for r in generated], 0.95) if generated else None,
    )
