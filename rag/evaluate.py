"""Evaluation on QA files (one JSON object a line: id, type, question, gold_titles, answer_any, history)."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from pydantic import BaseModel, Field

from .errors import CorpusError
from .types import Hit, normalise_text


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


def evaluate_retrieval(
    items: Sequence[QAItem], search: Callable[[str], list[Hit]]
) -> dict[str, RetrievalScores]:
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
