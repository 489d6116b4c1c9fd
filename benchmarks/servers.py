"""Scale-out latency: the Chroma server vs the embedded store, llama-cpp-python's server vs in-process.

    python benchmarks/servers.py [--chunks 10000] [--queries 200] [--models qwen2.5-coder-0.5b ...]
                                 [--answer-home DIR] [--questions 3]

Retrieval: ~N synthetic chunks (sentences of the bundled abstracts recombined into new abstracts,
with random unit vectors standing in for embeddings: the store's cost does not depend on what the
vectors mean) are ingested through `Index` into an embedded store and into a `chroma run` server;
then the same random query vectors go to `VectorStore.query` (k = 40, what the retriever asks for)
and to `Retriever.search` (hybrid: Chroma + BM25 + catalog), p50/p95 over the queries.

Answers: the same model in-process and behind `python -m llama_cpp.server` on loopback answers the
same questions about the bundled corpus (`--answer-home`: a data dir whose index holds it; default:
built on first use), alternating the two paths; time to first verified token and total, after one
warm-up answer on each path. Servers are started on free loopback ports and always stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from rag import Assistant, Settings
from rag.answer.retrieve import Retriever
from rag.backends.models import ModelRegistry
from rag.corpus.chunking import split_sentences, word_count_tokens
from rag.corpus.readers import dedupe, read_corpus
from rag.ingest.pipeline import Ingester
from rag.store.index import Index
from rag.types import Paper

ANSWER_QUESTIONS = [
    "How many parameters does Video-Panda use for visual processing?",
    "What does the IDF-aware FLOPS loss add to sparse retrievers?",
    "How does SimMIM mask images for pretraining?",
    "Which benchmark tests whether neural retrievers understand negation?",
]


class RandomEmbedder:
    """Unit vectors derived from a hash of the text: embedding costs nothing, the store does the work."""

    name = "benchmark-random-384"
    dimension = 384

    def count_tokens(self, texts: list[str]) -> list[int]:
        return word_count_tokens(texts)

    def _vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
        return v / np.linalg.norm(v)

    def encode(self, texts: list[str], progress=None) -> np.ndarray:
        return np.stack([self._vector(t) for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)

    def encode_query(self, text: str) -> np.ndarray:
        return self._vector(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, argv: list[str], port: int, ready_path: str, log: Path, timeout: float):
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{argv[0]} exited early; see {log}")
            try:
                if httpx.get(self.url + ready_path, timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise SystemExit(f"{argv} not ready after {timeout} s; see {log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def synthetic_papers(n_chunks: int, seed: int = 0) -> list[Paper]:
    """Papers of 3 recombined sentences (one chunk each at 160 word pieces)."""
    sentences = [s for p in dedupe(read_corpus(None).papers) for s in split_sentences(p.abstract) if len(s) > 40]
    rng = random.Random(seed)
    return [
        Paper(
            title=f"Synthetic paper {i}: {rng.choice(sentences)[:60]}",
            abstract=" ".join(rng.sample(sentences, 3)),
            source="synthetic.jsonl",
        )
        for i in range(n_chunks)
    ]


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


def bench_retrieval(work: Path, n_chunks: int, n_queries: int) -> list[str]:
    papers = synthetic_papers(n_chunks)
    chroma = Server(
        [
            shutil.which("chroma") or str(Path(sys.executable).parent / "chroma"),
            "run",
            "--path",
            str(work / "chroma-server"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port := free_port()),
        ],
        port,
        "/api/v2/heartbeat",
        work / "chroma.log",
        timeout=60,
    )
    rows = []
    try:
        rng = np.random.default_rng(1)
        queries = [q / np.linalg.norm(q) for q in rng.standard_normal((n_queries, 384)).astype(np.float32)]
        texts = [f"{p.title} {p.abstract[:80]}" for p in random.Random(2).sample(papers, n_queries)]
        for label, url in (("embedded (PersistentClient)", None), ("server (HttpClient, loopback)", chroma.url)):
            settings = Settings(home=work / ("home-server" if url else "home-embedded"), chroma_url=url)
            index = Index(settings, RandomEmbedder())  # type: ignore[arg-type]
            t0 = time.perf_counter()
            report = Ingester(index).ingest(papers)
            ingest_s = time.perf_counter() - t0
            index.open_for_search()
            retriever = Retriever(index, settings)
            for q in queries[:10]:
                index.vectors.query(q, 40)  # warm caches and connections
            query_s = []
            for q in queries:
                t0 = time.perf_counter()
                index.vectors.query(q, 40)
                query_s.append(time.perf_counter() - t0)
            search_s = []
            for text in texts:
                t0 = time.perf_counter()
                retriever.search(text, 10)
                search_s.append(time.perf_counter() - t0)
            (q50, q95), (s50, s95) = percentiles(query_s), percentiles(search_s)
            rows.append(
                f"| {label} | {index.vectors.count()} | {report.chunks_added / ingest_s:.0f} | "
                f"{q50:.1f} | {q95:.1f} | {s50:.1f} | {s95:.1f} |"
            )
            print(rows[-1], flush=True)
            index.close()
    finally:
        chroma.stop()
    return rows


def bench_answers(work: Path, models: list[str], answer_home: Path | None, n_questions: int) -> list[str]:
    from rag.backends.llm import make_generator

    home = answer_home or work / "answer-home"
    registry = ModelRegistry(Settings(home=home))
    threads = os.cpu_count() or 2
    rows = []
    for name in models:
        resolved = registry.resolve(name)
        server = Server(
            [
                sys.executable,
                "-m",
                "rag.backends.llama_server",
                "--model",
                str(resolved.path),
                "--model_alias",
                name,
                "--chat_format",
                resolved.chat_format or "chatml",
                "--n_ctx",
                str(resolved.n_ctx),
                "--n_threads",
                str(threads),
                "--host",
                "127.0.0.1",
                "--port",
                str(port := free_port()),
            ],
            port,
            "/v1/models",
            work / f"llama-{name}.log",
            timeout=180,
        )
        try:
            local = make_generator(Settings(home=home, n_threads=threads), name, registry=registry, load=False)
            paths = {
                "in-process": Assistant(Settings(home=home), generator=local),
                "llama_cpp.server": Assistant(Settings(home=home, model=f"openai:{name}", base_url=server.url)),
            }
            paths["in-process"].ensure_index()
            times: dict[str, list[tuple[float, float, int]]] = {label: [] for label in paths}
            for assistant in paths.values():
                assistant.load_generator()
                assistant.ask(ANSWER_QUESTIONS[-1])  # warm-up: model pages, the system prompt's KV cache
            for question in ANSWER_QUESTIONS[:n_questions]:
                for label, assistant in paths.items():  # alternate: drifting load hits both paths alike
                    answer = assistant.ask(question)
                    t = answer.timings
                    times[label].append((t.first_token_s or t.total_s, t.total_s, answer.completion_tokens))
                    print(
                        f"  {name} {label}: {question[:40]!r} first {t.first_token_s or 0:.2f} s, total "
                        f"{t.total_s:.2f} s, {answer.completion_tokens} answer tokens, refused={answer.refused}",
                        flush=True,
                    )
            for label in paths:
                firsts, totals, tokens = zip(*times[label])
                rows.append(
                    f"| {name} | {label} | {len(firsts)} | {statistics.median(firsts):.2f} | "
                    f"{statistics.median(totals):.2f} | {statistics.median(tokens):.0f} |"
                )
                print(rows[-1], flush=True)
            for assistant in paths.values():
                assistant.close()
        finally:
            server.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--models", nargs="*", default=["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"])
    parser.add_argument("--questions", type=int, default=3)
    parser.add_argument("--answer-home", type=Path, help="A data dir whose index holds the bundled corpus.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rag-bench-servers-") as tmp:
        work = Path(tmp)
        print("| store | vectors | ingest chunks/s | query k=40 p50 ms | p95 ms | hybrid search p50 ms | p95 ms |")
        print("|---|---|---|---|---|---|---|")
        retrieval = bench_retrieval(work, args.chunks, args.queries)
        answers = bench_answers(work, args.models, args.answer_home, args.questions) if args.models else []
    print("\n| store | vectors | ingest chunks/s | query k=40 p50 ms | p95 ms | hybrid search p50 ms | p95 ms |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(retrieval))
    if answers:
        print("\n| model | path | answers | median first token s | median total s | median answer tokens |")
        print("|---|---|---|---|---|---|")
        print("\n".join(answers))
    print(f"\nload average after the run: {os.getloadavg()}")


if __name__ == "__main__":
    main()
