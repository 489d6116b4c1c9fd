"""Retrieval quality and latency on a QA file: BM25 alone, dense alone, fused, side by side.

    python benchmarks/retrieval.py [../shared/eval/dev.jsonl]

Uses the index in RAG_HOME (built from the bundled corpus if missing).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rag import Assistant
from rag.scoring import evaluate_retrieval, load_qa, percentile

DEFAULT_QA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def main() -> None:
    qa_path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_QA
    items = load_qa(qa_path)
    assistant = Assistant()
    assistant.ensure_index()
    assistant.search("warm up")
    print(f"{qa_path.name}: {sum(i.answerable for i in items)} answerable items; k=10, one hit per paper\n")
    print("| retriever | type | n | top-1 | top-5 | MRR |")
    print("|---|---|---|---|---|---|")
    for mode in ("lexical", "dense", "hybrid"):
        scores = evaluate_retrieval(items, lambda q, mode=mode: assistant.search(q, k=10, mode=mode))
        for kind, s in scores.items():
            print(f"| {mode} | {kind} | {s.n} | {s.top1:.2f} | {s.top5:.2f} | {s.mrr:.3f} |")
    latencies = []
    for _ in range(3):
        for item in items:
            t0 = time.perf_counter()
            assistant.search(item.question, k=10)
            latencies.append((time.perf_counter() - t0) * 1000)
    print(
        f"\nhybrid search latency over {len(latencies)} queries (in-process, model loaded): "
        f"p50 {percentile(latencies, 0.5):.1f} ms, p95 {percentile(latencies, 0.95):.1f} ms"
    )


if __name__ == "__main__":
    main()
