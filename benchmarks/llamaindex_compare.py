"""Optional comparison: this assistant against LlamaIndex's CitationQueryEngine, same model, same papers.

    pip install llama-index-core llama-index-llms-llama-cpp llama-index-embeddings-huggingface \
        llama-index-vector-stores-chroma
    HF_HUB_OFFLINE=1 python benchmarks/llamaindex_compare.py [QA.jsonl] [--questions 10] [--out FILE.json]

Both sides use the packaged GGUF model (llama.cpp, 2 threads, temperature 0, the same context size),
the packaged all-MiniLM-L6-v2 embedder and the bundled papers; LlamaIndex stores its vectors in an
embedded Chroma in a temp dir, as a user following its documentation would (`CitationQueryEngine.from_args`
with its defaults: top 2 sources cut into 512-token citation chunks). Its prompt is put into the
model's own chat template (ChatML), as ours is.

Each question is asked of both in turn (the order alternating), each side warm (model loaded, one
question asked before the timing). Reported per side: prompt tokens, time to first token (the first
streamed token after the call), total time, and whether the answer contains one of the gold answer
strings (a rough check; `rag eval` is the real measure of ours). Questions: answerable, non follow-up
items spread over the QA file (read at run time, never copied here).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rag import Assistant, Settings
from rag.backends.embeddings import PACKAGED_MODEL, resolve_embedding_model
from rag.backends.models import ModelRegistry
from rag.corpus.readers import dedupe, read_corpus
from rag.scoring import load_qa

DEFAULT_QA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"


def chatml(system: str | None, user: str) -> str:
    head = f"<|im_start|>system\n{system}<|im_end|>\n" if system else ""
    return f"{head}<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"


class LlamaIndexSide:
    """A CitationQueryEngine over the same papers; records each prompt as the model gets it."""

    def __init__(self, model_path: Path, n_ctx: int, threads: int) -> None:
        import chromadb
        from llama_index.core import Document, StorageContext, VectorStoreIndex
        from llama_index.core import Settings as LlamaIndexSettings
        from llama_index.core.query_engine import CitationQueryEngine
        from llama_index.embeddings.huggingface import HuggingFaceEmbedding
        from llama_index.llms.llama_cpp import LlamaCPP
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.prompts: list[str] = []

        def completion_to_prompt(completion: str) -> str:
            prompt = chatml(None, completion)
            self.prompts.append(prompt)
            return prompt

        def messages_to_prompt(messages: Any) -> str:
            system = "\n".join(str(m.content) for m in messages if str(m.role.value) == "system") or None
            user = "\n".join(str(m.content) for m in messages if str(m.role.value) != "system")
            prompt = chatml(system, user)
            self.prompts.append(prompt)
            return prompt

        self.llm = LlamaCPP(
            model_path=str(model_path),
            temperature=0.0,
            max_new_tokens=256,
            context_window=n_ctx,
            model_kwargs={"n_threads": threads, "n_ctx": n_ctx},
            completion_to_prompt=completion_to_prompt,
            messages_to_prompt=messages_to_prompt,
            verbose=False,
        )
        LlamaIndexSettings.llm = self.llm
        LlamaIndexSettings.embed_model = HuggingFaceEmbedding(
            model_name=str(resolve_embedding_model(PACKAGED_MODEL)), device="cpu"
        )
        papers = dedupe(read_corpus().papers)
        documents = [Document(text=f"{p.title}\n{p.abstract}", metadata={"title": p.title}) for p in papers]
        self.documents = len(documents)
        self.tmp = tempfile.TemporaryDirectory()
        client = chromadb.PersistentClient(path=self.tmp.name)
        store = ChromaVectorStore(chroma_collection=client.get_or_create_collection("papers"))
        started = time.perf_counter()
        index = VectorStoreIndex.from_documents(
            documents, storage_context=StorageContext.from_defaults(vector_store=store)
        )
        self.index_s = time.perf_counter() - started
        self.engine = CitationQueryEngine.from_args(index, streaming=True)

    def ask(self, question: str) -> dict[str, Any]:
        started = time.perf_counter()
        response = self.engine.query(question)
        first, text = None, []
        for token in response.response_gen:
            if first is None:
                first = time.perf_counter() - started
            text.append(token)
        total = time.perf_counter() - started
        prompt_tokens = len(self.llm._model.tokenize(self.prompts[-1].encode(), special=True))
        return {"text": "".join(text), "first_token_s": first, "total_s": total, "prompt_tokens": prompt_tokens}


def ours(assistant: Assistant, question: str) -> dict[str, Any]:
    started = time.perf_counter()
    first, answer = None, None
    for event in assistant.events(question):
        if first is None and event.kind == "token":
            first = time.perf_counter() - started
        if event.answer is not None:
            answer = event.answer
    total = time.perf_counter() - started
    assert answer is not None
    return {"text": answer.text, "first_token_s": first, "total_s": total, "prompt_tokens": answer.prompt_tokens}


def spread(items: list, n: int) -> list:
    if len(items) <= n:
        return items
    return [items[round(i * (len(items) - 1) / (n - 1))] for i in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("qa", nargs="?", type=Path, default=DEFAULT_QA)
    parser.add_argument("--questions", type=int, default=10)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    candidates = [i for i in load_qa(args.qa) if i.answerable and not i.history]
    items = spread(candidates, args.questions)
    # The warm-up question is one not timed: a timed one would find its whole prompt in the KV cache.
    warm = next(i.question for i in candidates if i not in items)
    settings = Settings()
    assistant = Assistant(settings)
    generator = assistant.load()
    resolved = ModelRegistry(settings).resolve()
    threads = getattr(generator, "n_threads", None) or settings.models.n_threads or 2
    theirs = LlamaIndexSide(resolved.path, resolved.n_ctx, threads)
    print(f"LlamaIndex indexed {theirs.documents} papers in {theirs.index_s:.1f} s", flush=True)
    ours(assistant, warm)
    theirs.ask(warm)

    rows = []
    for n, item in enumerate(items):
        sides = [("ours", lambda q: ours(assistant, q)), ("llamaindex", theirs.ask)]
        if n % 2:
            sides.reverse()
        row: dict[str, Any] = {"id": item.id}
        for name, ask in sides:
            result = ask(item.question)
            result["hit"] = any(a.lower() in result["text"].lower() for a in item.answer_any)
            row[name] = result
        rows.append(row)
        print(
            f"{item.id}: ours {row['ours']['prompt_tokens']} tok, first token {row['ours']['first_token_s'] or 0:.2f} s; "
            f"LlamaIndex {row['llamaindex']['prompt_tokens']} tok, {row['llamaindex']['first_token_s'] or 0:.2f} s",
            flush=True,
        )

    summary: dict[str, Any] = {}
    for name in ("ours", "llamaindex"):
        got = [r[name] for r in rows]
        firsts = [g["first_token_s"] for g in got if g["first_token_s"] is not None]
        summary[name] = {
            "median_prompt_tokens": statistics.median(g["prompt_tokens"] for g in got),
            "median_first_token_s": round(statistics.median(firsts), 2) if firsts else None,
            "median_total_s": round(statistics.median(g["total_s"] for g in got), 2),
            "answer_contains_gold": f"{sum(g['hit'] for g in got)}/{len(got)}",
        }
    ratios = [
        r["ours"]["first_token_s"] / r["llamaindex"]["first_token_s"]
        for r in rows
        if r["ours"]["first_token_s"] and r["llamaindex"]["first_token_s"]
    ]
    summary["median_first_token_ratio_ours_to_llamaindex"] = round(statistics.median(ratios), 2) if ratios else None
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
