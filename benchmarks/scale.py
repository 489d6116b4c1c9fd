"""Retrieval cost vs corpus size: the bundled corpus (~1.6k chunks) and synthetic corpora of 10k and
100k chunks, indexed by the project's own components (`rag.index.Index`: SQLite catalog, Chroma,
bm25s) in a temp dir that is removed at the end.

    python benchmarks/scale.py [--sizes 10000 100000] [--queries 200] [--qa ../shared/eval/dev.jsonl]
                               [-o benchmarks/results-scale.json]

Synthetic papers recombine sentences of the bundled abstracts under fresh titles (seeded, so every
run builds the same corpus). Their chunk vectors are random unit vectors (embedding 100k chunks with
the real model would take ~50 min here); queries are always embedded by the real model, so the
dense side pays the real query cost but its results are meaningless on synthetic corpora. The
bundled point is built the same way (for comparable build figures) and queried on the real index in
RAG_HOME (real vectors) when there is one.

Per point: build time (with where it went), size on disk (catalog, Chroma, BM25), peak RSS of the
build, time to open the index in a new process, RSS after loading, and per-query latency p50/p95 of
`Retriever.search` in dense, lexical and hybrid mode (plus hybrid with a source filter, and the
parts of a hybrid query and of the filter on their own) over the same queries: questions of the QA
file, if given (used as queries only), topped up with sentences sampled from the bundled abstracts.
Each build and each measurement runs in a fresh process so that peak RSS belongs to that step alone.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path

import numpy as np

import rag.index as rag_index
from rag.catalog import Catalog
from rag.chunking import chunk_paper, split_sentences
from rag.corpus import dedupe, read_corpus
from rag.embeddings import Embedder
from rag.evaluate import load_qa, percentile
from rag.index import Index
from rag.lexical import LexicalIndex
from rag.retrieve import Retriever
from rag.settings import Settings
from rag.types import Paper
from rag.vectors import VectorStore

DEFAULT_QA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"
MODES = ("dense", "lexical", "hybrid")
PARTS = ("part:embed_query", "part:chroma_query", "part:bm25_search", "part:filter_ids")
SYNTHETIC_SOURCES = 8  # papers spread over 8 source files, so a source filter keeps ~1/8
K = 10
WARMUP_QUERIES = 10


# --- measuring helpers ----------------------------------------------------------------------
def rss_mb() -> float:
    """Resident set size of this process now."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def index_sizes(index_dir: Path) -> dict[str, int]:
    catalog = sum(dir_bytes(p) for p in index_dir.glob("catalog.sqlite*"))  # with the WAL files
    return {"catalog": catalog, "chroma": dir_bytes(index_dir / "chroma"), "lexical": dir_bytes(index_dir / "lexical")}


@contextmanager
def timed_calls(owner: object, name: str, totals: dict[str, float], key: str) -> Iterator[None]:
    """Add the time spent in `owner.name` to `totals[key]` (the ingest code calls it, not us)."""
    raw = vars(owner)[name]  # the descriptor itself, to put back as it was (classmethods too)
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] = totals.get(key, 0.0) + time.perf_counter() - t0

    setattr(owner, name, wrapper)
    try:
        yield
    finally:
        setattr(owner, name, raw)


def summary_ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": percentile(ms, 0.5), "p95_ms": percentile(ms, 0.95), "mean_ms": sum(ms) / len(ms), "n": len(ms)}


# --- corpus and queries ---------------------------------------------------------------------
def bundled_papers() -> list[Paper]:
    return dedupe(read_corpus(None).papers)


def make_embedder(settings: Settings, cls: type[Embedder] = Embedder, **extra) -> Embedder:
    """Built as `Assistant` builds it, so the ONNX export in the models dir is reused."""
    return cls(settings.embedding_model, batch_size=settings.embed_batch_size, n_threads=settings.n_threads,
               cache_dir=settings.models_dir / "embeddings", **extra)


class RandomVectorEmbedder(Embedder):
    """Random unit vectors for chunks (fast indexing); the real model for queries and token counts."""

    def __init__(self, *args, seed: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)

    def encode(self, texts: list[str], progress=None) -> np.ndarray:
        vectors = self.rng.standard_normal((len(texts), self.dimension)).astype(np.float32)
        if progress:
            progress(len(texts))
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def fresh_title(rng: random.Random, words: list[str], taken: set[str]) -> str:
    while True:
        title = " ".join(rng.sample(words, rng.randint(4, 9)))
        title = title[0].upper() + title[1:]
        if title.lower() not in taken:
            taken.add(title.lower())
            return title


def synthetic_papers(n_chunks: int, seed: int, settings: Settings, count_tokens: Callable) -> tuple[list[Paper], int]:
    """Papers of recombined bundled sentences until their chunks reach `n_chunks`; (papers, chunks)."""
    real = bundled_papers()
    rng = random.Random(seed)
    sentences = [s for p in real for s in split_sentences(p.abstract)]
    lengths = [len(split_sentences(p.abstract)) for p in real]  # the real abstracts' length distribution
    words = sorted({w for p in real for w in p.title.split() if w.isalpha() and len(w) > 2})
    taken = {p.title.lower() for p in real}
    papers: list[Paper] = []
    chunks = 0
    while chunks < n_chunks:
        i = len(papers)
        paper = Paper(
            title=fresh_title(rng, words, taken),
            abstract=" ".join(rng.sample(sentences, min(rng.choice(lengths), len(sentences)))),
            source=f"synthetic/part-{i % SYNTHETIC_SOURCES}.jsonl",
            year=2016 + i % 10,
        )
        chunks += len(chunk_paper(paper, count_tokens, settings.chunk_tokens, settings.chunk_overlap))
        papers.append(paper)
    return papers, chunks


def make_queries(n: int, seed: int, qa_path: Path | None) -> tuple[list[str], dict[str, int]]:
    """QA-file questions (if any) topped up with abstract sentences of 8-30 words; (queries, counts)."""
    questions = [item.question for item in load_qa(qa_path)][:n] if qa_path and qa_path.exists() else []
    rng = random.Random(seed + 1)
    pool = [s for p in bundled_papers() for s in split_sentences(p.abstract) if 8 <= len(s.split()) <= 30]
    sampled = rng.sample(pool, n - len(questions))
    return questions + sampled, {"qa_questions": len(questions), "abstract_sentences": len(sampled)}


# --- the steps (each in a fresh process) ------------------------------------------------------
def build_step(home: str, n_chunks: int | None, seed: int) -> dict:
    """Index the bundled corpus (n_chunks None) or a synthetic one; where the time and memory went."""
    settings = Settings(home=Path(home))
    embedder = make_embedder(settings, RandomVectorEmbedder, seed=seed)
    embedder.encode_query("load the model")  # model load is not index-building work
    t0 = time.perf_counter()
    if n_chunks is None:
        papers = bundled_papers()
    else:
        papers, _ = synthetic_papers(n_chunks, seed, settings, embedder.count_tokens)
    generate_s = time.perf_counter() - t0
    totals: dict[str, float] = {}
    index = Index(settings, embedder)
    with (
        timed_calls(rag_index, "chunk_paper", totals, "chunking_s"),
        timed_calls(VectorStore, "add", totals, "chroma_add_s"),
        timed_calls(Catalog, "commit_batch", totals, "catalog_commit_s"),
        timed_calls(LexicalIndex, "build", totals, "bm25_build_s"),
        timed_calls(LexicalIndex, "save", totals, "bm25_save_s"),
    ):
        t0 = time.perf_counter()
        report = index.ingest(papers)
        build_s = time.perf_counter() - t0
    chunks = index.catalog.chunk_count()
    index.close()
    return {
        "papers": len(papers), "chunks": chunks, "generate_s": generate_s, "build_s": build_s,
        "build_parts": {**totals, "random_vectors_s": report.embed_seconds},
        "disk_bytes": index_sizes(settings.index_dir), "build_peak_rss_mb": peak_rss_mb(),
    }


def query_step(home: str, queries: list[str], source_filter: str) -> dict:
    """Open the index as `rag` would, then time every query in every mode (modes interleaved)."""
    settings = Settings(home=Path(home))
    rss_start = rss_mb()
    t0 = time.perf_counter()
    embedder = make_embedder(settings)
    embedder.encode_query("load the model")
    embedder_s = time.perf_counter() - t0
    index = Index(settings, embedder)
    t0 = time.perf_counter()
    index.open_for_search()
    open_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    lexical = index.lexical
    bm25_load_s = time.perf_counter() - t0
    retriever = Retriever(index, settings)
    first_query_s = {}
    for mode in MODES:  # Chroma loads its HNSW graph on the first query
        t0 = time.perf_counter()
        retriever.search(queries[0], K, mode=mode)
        first_query_s[mode] = time.perf_counter() - t0
    rss_loaded = rss_mb()
    for query in queries[:WARMUP_QUERIES]:
        for mode in MODES:
            retriever.search(query, K, mode=mode)

    times: dict[str, list[float]] = {m: [] for m in (*MODES, "hybrid+source", *PARTS)}
    for query in queries:
        # Interleaved, so that a burst of load from other processes hits every mode alike.
        for mode in MODES:
            t0 = time.perf_counter()
            retriever.search(query, K, mode=mode)
            times[mode].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        retriever.search(query, K, mode="hybrid", source=source_filter)
        times["hybrid+source"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        vector = embedder.encode_query(query)
        times["part:embed_query"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.vectors.query(vector, settings.candidates)
        times["part:chroma_query"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lexical.search(query, settings.candidates)
        times["part:bm25_search"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.catalog.chunk_ids_matching(source_filter, None)  # what a filtered search does first
        times["part:filter_ids"].append(time.perf_counter() - t0)
    chunks = index.catalog.chunk_count()
    filtered_share = len(index.catalog.chunk_ids_matching(source_filter, None)) / chunks
    index.close()
    return {
        "chunks": chunks, "embedder_load_s": embedder_s, "open_s": open_s, "bm25_load_s": bm25_load_s, "first_query_s": first_query_s,
        "rss_before_load_mb": rss_start, "rss_after_load_mb": rss_loaded, "peak_rss_mb": peak_rss_mb(),
        "latency": {name: summary_ms(values) for name, values in times.items()},
        "source_filter": source_filter, "source_filter_share": filtered_share,
    }


def in_new_process(fn: Callable, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- reporting ------------------------------------------------------------------------------
def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def growth_per_10x(small: tuple[int, float], large: tuple[int, float]) -> float:
    """How much a cost grows per 10x more chunks, between two points (chunks, cost)."""
    decades = math.log10(large[0] / small[0])
    return (large[1] / small[1]) ** (1 / decades) if decades > 0 and small[1] > 0 else float("nan")


def print_tables(points: list[dict]) -> None:
    mb = 1e6
    print("\n| corpus | chunks | dense vectors | build s | chroma add s | BM25 build+save s | catalog MB | "
          "Chroma MB | BM25 MB | build peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for p in points:
        b, d = p["build"], p["build"]["disk_bytes"]
        parts = b["build_parts"]
        print(f"| {p['name']} | {b['chunks']} | random | {b['build_s']:.1f} | {parts.get('chroma_add_s', 0):.1f} | "
              f"{parts.get('bm25_build_s', 0) + parts.get('bm25_save_s', 0):.1f} | {d['catalog'] / mb:.1f} | "
              f"{d['chroma'] / mb:.1f} | {d['lexical'] / mb:.1f} | {b['build_peak_rss_mb']:.0f} |")
    print("\n| corpus | chunks queried | dense vectors | open s | BM25 load s | RSS after load MB | peak RSS MB | "
          "load avg (1 min) |")
    print("|---|---|---|---|---|---|---|---|")
    for p in points:
        q = p["query"]
        print(f"| {p['name']} | {p['chunks_queried']} | {p['query_vectors']} | {q['open_s']:.2f} | "
              f"{q['bm25_load_s']:.2f} | {q['rss_after_load_mb']:.0f} | {q['peak_rss_mb']:.0f} | "
              f"{p['load_average_after'][0]} |")
    names = [*MODES, "hybrid+source", *PARTS]
    print("\n| corpus | " + " | ".join(f"{n} p50 / p95 ms" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for p in points:
        lat = p["query"]["latency"]
        print(f"| {p['name']} | " + " | ".join(f"{lat[n]['p50_ms']:.1f} / {lat[n]['p95_ms']:.1f}" for n in names) + " |")
    if len(points) > 1:
        print("\n| growth per 10x chunks | stat | " + " | ".join(names) + " |")
        print("|---|---" + "|---" * len(names) + "|")
        for small, large in zip(points, points[1:]):
            for stat in ("p50_ms", "p95_ms"):
                ratios = [growth_per_10x((small["chunks_queried"], small["query"]["latency"][n][stat]),
                                         (large["chunks_queried"], large["query"]["latency"][n][stat])) for n in names]
                print(f"| {small['name']} -> {large['name']} | {stat[:3]} | " + " | ".join(f"{r:.2f}x" for r in ratios) + " |")


# --- main -----------------------------------------------------------------------------------
def measure_point(name: str, root: Path, n_chunks: int | None, queries: list[str], seed: int,
                  real_index: Path | None) -> dict:
    home = root / name
    print(f"[{name}] building (load avg {load_average()}) ...", flush=True)
    build = in_new_process(build_step, str(home), n_chunks, seed)
    print(f"[{name}] {build['chunks']} chunks in {build['build_s']:.1f} s; querying ...", flush=True)
    query_home, vectors = home, "random"
    if n_chunks is None and real_index is not None:
        query_home, vectors = root / "bundled-real", "real"
        shutil.copytree(real_index, query_home / "index")
    source_filter = "bundled:000_" if n_chunks is None else "synthetic/part-0"
    query = in_new_process(query_step, str(query_home), queries, source_filter)
    if vectors == "real":
        query["disk_bytes_real_index"] = index_sizes(query_home / "index")
    point = {"name": name, "build": build, "query": query, "chunks_queried": query["chunks"],
             "query_vectors": vectors, "load_average_after": load_average()}
    shutil.rmtree(home, ignore_errors=True)  # 100k chunks take ~1 GB: do not keep them to the end
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000], help="synthetic corpus sizes in chunks")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA, help="QA file whose questions are used as queries")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled-corpus point")
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    settings = Settings()
    real_index = settings.index_dir if (settings.index_dir / "catalog.sqlite").exists() else None
    queries, query_counts = make_queries(args.queries, args.seed, args.qa)
    started = time.time()
    root = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    points: list[dict] = []
    try:
        if not args.no_bundled:
            points.append(measure_point("bundled", root, None, queries, args.seed, real_index))
        for size in args.sizes:
            points.append(measure_point(f"synthetic-{size // 1000}k", root, size, queries, args.seed, None))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_tables(points)
    result = {
        "command": "python benchmarks/scale.py " + " ".join(
            [f"--sizes {' '.join(map(str, args.sizes))}", f"--queries {args.queries}"]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "cpu_count": os.cpu_count(), "k": K, "candidates": settings.candidates, "queries": query_counts,
        "points": points,
    }
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
        print(f"\nresults written to {args.output}")


if __name__ == "__main__":
    main()
