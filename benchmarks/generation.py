"""Answer latency vs raw llama.cpp speed for the same token counts.

    python benchmarks/generation.py [MODEL ...]     (default: every pip-installed catalogue model)

For each model: raw prefill and generation tokens/s of llama.cpp on a fixed prompt, then the
assistant (warm process) answering a few fixed questions about the bundled corpus: time to first
token and total, next to what raw llama.cpp would need for the same prompt and answer token counts.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time

from rag import Assistant, Settings
from rag.backends.llm import LlamaCppGenerator
from rag.backends.models import ModelRegistry

QUESTIONS = [
    "Is a dedicated vector store needed for vector search with OpenAI embeddings?",
    "What does the IDF-aware FLOPS loss add to sparse retrievers?",
    "Which benchmark tests whether neural retrievers understand negation?",
    "How does SimMIM mask images for pretraining?",
    "What is the capital of France?",
]


def raw_speed(generator: LlamaCppGenerator, n_prompt: int = 300, n_gen: int = 48) -> tuple[float, float]:
    llm = generator.llm
    tokens = llm.tokenize(("Sparse retrieval with learned term weights and inverted indexes. " * 80).encode())[
        :n_prompt
    ]
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(tokens)
    prefill = n_prompt / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i, _ in enumerate(llm.generate([], reset=False, temp=0.0)):  # continue from the evaluated prompt
        if i + 1 == n_gen:
            break
    gen = n_gen / (time.perf_counter() - t0)
    llm.reset()
    return prefill, gen


def main() -> None:
    settings = Settings()
    registry = ModelRegistry(settings)
    names = sys.argv[1:] or [e.name for e in registry.entries if e.kind == "pip" and e.part_files()]
    print(
        "| model | raw prefill tok/s | raw gen tok/s | median prompt tok | median answer tok | median TTFT s | raw TTFT s | median total s | raw total s | peak RSS GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name in names:
        assistant = Assistant(Settings(model=name))
        generator = assistant.load_generator()
        prefill, gen = raw_speed(generator)
        assistant.ask(QUESTIONS[0])  # warm: the system prompt's KV cache, the embedder
        answers = [assistant.ask(q) for q in QUESTIONS]
        generated = [a for a in answers if a.timings.first_token_s is not None]
        pt = statistics.median(a.prompt_tokens for a in generated)
        ct = statistics.median(a.completion_tokens for a in generated)
        ttft = statistics.median(a.timings.first_token_s for a in generated)
        total = statistics.median(a.timings.total_s for a in generated)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(
            f"| {name} | {prefill:.0f} | {gen:.1f} | {pt:.0f} | {ct:.0f} | {ttft:.2f} | {pt / prefill:.2f} | "
            f"{total:.2f} | {pt / prefill + ct / gen:.2f} | {rss:.2f} |"
        )
        refused = [a.question for a in answers if a.refused]
        print(
            f"|  | refused without a model call: {sum(a.timings.first_token_s is None for a in answers)}, refused: {refused} |"
        )
        assistant.close()


if __name__ == "__main__":
    main()
