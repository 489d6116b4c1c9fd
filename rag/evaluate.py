"""Evaluation on QA files (one JSON object a line: id, type, question, gold_titles, answer_any, history)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SerializerFunctionWrapHandler, model_serializer

from rag.scoring import (
    AnswerRecord,
    AnswerScores,
    Ask,
    EvalProgress,
    QAItem,
    RetrievalScores,
    StageScores,
    evaluate_context,
    evaluate_retrieval,
    score_answer,
    summarise_answers,
    summarise_stages,
)
from rag.types import Answer, Citation, Hit

if TYPE_CHECKING:
    from rag.answer.retrieve import Mode
    from rag.assistant import Assistant


def evaluate_answers(
    items: Sequence[QAItem], ask: Ask, progress: Callable[[int], None] | None = None
) -> tuple[list[AnswerRecord], dict[str, AnswerScores]]:
    """Ask every item (follow-ups after their history, with its answers as history); score each answer.

    `ask(question, history)` returns an `Answer`. Returns (records, scores overall and per type).
    """
    records = []
    for item in items:
        history = [ask(q, []) for q in item.history[:1]]
        for q in item.history[1:]:
            history.append(ask(q, list(history)))
        records.append(score_answer(item, ask(item.question, history)))
        if progress:
            progress(1)
    by_type: dict[str, list[AnswerRecord]] = {}
    for record in records:
        by_type.setdefault(record.type, []).append(record)
    scores = {"all": summarise_answers(records)}
    scores.update({t: summarise_answers(r) for t, r in sorted(by_type.items())})
    return records, scores


def naive_rag_ask(assistant: Assistant, k: int = 5) -> Ask:
    """The baseline peers ship: dense top-k whole abstracts in a plain prompt, keys taken at face value.

    No relevance gate, no sentence selection, no citation checks: what our pipeline is measured against.
    """
    import time

    from rag.answer.citations import parse_keys
    from rag.answer.prompts import CANNOT_ANSWER
    from rag.types import Timings

    def ask(question: str, history: list[Answer]) -> Answer:
        started = time.perf_counter()
        hits = assistant.search(question, k=k, mode="dense")
        papers = assistant.index.catalog.get_papers(h.paper_id for h in hits)
        context = "\n\n".join(f"[{i}] {h.title}\n{papers[h.paper_id].abstract}" for i, h in enumerate(hits, start=1))
        generator = assistant.load_generator()
        messages = [{"role": "user", "content": assistant.prompts["naive"].render(passages=context, question=question)}]
        timings = Timings(retrieve_s=time.perf_counter() - started)
        text, tokens = "", 0
        for piece in generator.stream(
            messages, max_tokens=assistant.settings.answer.max_answer_tokens, stop=["\n\n\n", "Question:"]
        ):
            if timings.first_token_s is None:
                timings.first_token_s = time.perf_counter() - started
            text += piece
            tokens += 1
        timings.total_s = time.perf_counter() - started
        keys = [n for n in dict.fromkeys(parse_keys(text)) if 1 <= n <= len(hits)]
        refused = (
            "does not answer" in text.lower() or "not mentioned" in text.lower() or "no information" in text.lower()
        )
        return Answer(
            question=question,
            text=text.strip() or CANNOT_ANSWER,
            refused=refused or not text.strip(),
            timings=timings,
            citations=[
                Citation(key=n, paper_id=hits[n - 1].paper_id, title=hits[n - 1].title, text=hits[n - 1].text)
                for n in keys
            ],
            model=generator.name,
            prompt_tokens=sum(generator.count_tokens(m["content"]) for m in messages),
            completion_tokens=tokens,
        )

    return ask


class BaselineReport(BaseModel):
    """How a simpler pipeline does on the same items: retrieval (BM25 alone, dense alone) or answers (naive RAG)."""

    retrieval: dict[str, RetrievalScores] | None = None
    answers: dict[str, AnswerScores] | None = None

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {key: value for key, value in handler(self).items() if value is not None}


class EvalReport(BaseModel):
    """What `rag eval` measured (`--json`, `-o FILE`): scores overall and per question type.

    Parts that were not run (answers with --retrieval-only, baselines without --baselines) are absent.
    """

    file: str
    k: int
    items: int
    retrieval: dict[str, RetrievalScores]
    baselines: dict[str, BaselineReport] | None = None
    model: str | None = None
    stages: dict[str, StageScores] | None = None  # answerable items: gold shown, answer shown, hit
    answers: dict[str, AnswerScores] | None = None
    records: list[AnswerRecord] | None = None

    @model_serializer(mode="wrap")
    def _without_absent(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        optional = {"baselines", "model", "stages", "answers", "records"}
        return {key: value for key, value in handler(self).items() if value is not None or key not in optional}


def run_eval(
    assistant: Assistant,
    items: Sequence[QAItem],
    *,
    file: Path | str,
    k: int = 5,
    retrieval_only: bool = False,
    context_only: bool = False,
    baselines: bool = False,
    progress: EvalProgress | None = None,
) -> EvalReport:
    """Score retrieval (top `k`, hybrid) and, unless `retrieval_only`, the answers of the assistant's model
    with the stages where answers are lost (`context_only`: the stages up to what the model is shown,
    without generating); with `baselines`, also BM25 alone, dense alone and a naive RAG pipeline."""
    depth = max(k, 10)  # MRR looks further than the top k

    def searcher(mode: Mode) -> Callable[[str], list[Hit]]:
        return lambda question: assistant.search(question, k=depth, mode=mode)

    report = EvalReport(file=str(file), k=k, items=len(items), retrieval=evaluate_retrieval(items, searcher("hybrid")))
    if baselines:
        report.baselines = {
            mode: BaselineReport(retrieval=evaluate_retrieval(items, searcher(mode))) for mode in ("lexical", "dense")
        }
    if retrieval_only:
        return report
    if context_only:
        report.stages = evaluate_context(items, lambda q, h: assistant.shown_passages(q, history=h))
        return report

    def tick(stage: str) -> Callable[[int], None] | None:
        return (lambda n: progress(stage, n, len(items))) if progress else None

    report.model = assistant.load_generator().name
    records, report.answers = evaluate_answers(items, lambda q, h: assistant.ask(q, history=h), tick("answers"))
    report.records = records
    report.stages = summarise_stages(
        [(r.type, bool(r.gold_shown), bool(r.answer_shown), r.hit) for r in records if r.hit is not None]
    )
    if report.baselines is not None:
        _, naive = evaluate_answers(items, naive_rag_ask(assistant, k=k), tick("naive_rag"))
        report.baselines["naive_rag"] = BaselineReport(answers=naive)
    return report


def compare(old: dict, new: dict) -> list[tuple[str, str, float | None, float | None]]:
    """(section, metric, old, new) for every number two result files share."""
    rows = []
    for section in ("retrieval", "stages", "answers"):
        for group, metrics in (new.get(section) or {}).items():
            for name, value in metrics.items():
                before = ((old.get(section) or {}).get(group) or {}).get(name)
                if isinstance(value, (int, float)) or isinstance(before, (int, float)):
                    rows.append((f"{section}.{group}", name, before, value))
    return rows
