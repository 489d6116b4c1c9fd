"""Retrieval and build cost vs corpus size: the bundled corpus (~2.8k chunks) and synthetic corpora of
10k, 100k, 1M chunks, indexed by the project's own components (`rag.store.index.Index`: SQLite catalog,
Chroma, bm25s) in a temp dir that is removed at the end.

    python benchmarks/scale.py [--sizes 10000 100000 1000000] [--queries 200] [--qa ../shared/eval/dev.jsonl]
                               [--chroma-server] [--llm qwen2.5-coder-1.5b] [--ingest-sample 1500]
                               [--corpus-cache DIR] [-o benchmarks/results-scale.json]

Synthetic papers recombine sentences of the bundled abstracts under fresh titles (seeded, so every
run builds the same corpus), spread over 8 source files and 10 years, with 3 authors each out of a
pool sized so that an author has ~30 papers at every size. They are written once as JSON Lines
files (`--corpus-cache`, reused by later runs) and read with the project's reader. Their chunk
vectors are random unit vectors (embedding 1M chunks with the real model would take ~8 h here);
queries are always embedded by the real model, so the dense side pays the real query cost but its
results are meaningless on synthetic corpora. The bundled point is built the same way and queried
on a copy of the real index in RAG_HOME (real vectors) when there is one.

Per point, each step in a fresh process (so that peak RSS belongs to that step):
- build: `Ingester(index).ingest` from papers to a saved BM25 index, with where the time went (chunking,
  Chroma upserts and catalog commits run in the index's writer thread, beside the embedding);
  build time per chunk; size on disk; peak RSS;
- ingest vs embedder (`--ingest-sample N`): N more chunks, embedded by the real model, ingested
  into the index of that size, against the embedder alone on the same texts: the ratio of the
  embed-and-commit phase (what grows with the papers ingested), and apart from it the fixed cost
  of any ingest at that size (BM25 rebuild, Chroma snapshot, file manifest);
- query: open the index as `rag` does, RSS after load (and with the language model loaded,
  `--llm`), per-query latency p50/p95 of `Retriever.search` in dense, lexical and hybrid mode and
  hybrid under five filters (a source file, 12.5% of the papers; a year, 10%; since a year, 50%;
  an author, ~30 papers; source and year together), plus the parts of a query on their own;
  questions of the QA file (used as queries only) topped up with sentences of bundled abstracts.
With `--chroma-server` every synthetic point is also built and queried with the vectors on a
Chroma server (`chroma run`) on loopback, whose RSS is reported too.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from multiprocessing import get_context
from pathlib import Path

import numpy as np

import rag.ingest.pipeline as rag_index
from rag.answer.retrieve import Retriever
from rag.backends.embeddings import Embedder
from rag.corpus.chunking import chunk_paper, split_sentences
from rag.corpus.readers import dedupe, read_corpus
from rag.ingest.pipeline import Ingester
from rag.scoring import load_qa, percentile
from rag.settings import Settings
from rag.store.catalog import Catalog
from rag.store.filters import Filters
from rag.store.index import Index
from rag.store.lexical import LexicalIndex
from rag.store.vectors import VectorStore
from rag.types import Paper

DEFAULT_QA = Path(__file__).resolve().parents[2] / "shared" / "eval" / "dev.jsonl"
MODES = ("dense", "lexical", "hybrid")
SYNTHETIC_SOURCES = 8  # papers spread over 8 source files, so a source filter keeps 1/8
YEARS = 10
AUTHORS_PER_PAPER = 3
PAPERS_PER_AUTHOR = 30
PARTS = ("part:embed_query", "part:chroma_query", "part:bm25_search", "part:filter_mask", "part:dense_exact_author")
K = 10
WARMUP_QUERIES = 10


def filters_for(synthetic: bool) -> dict[str, dict]:
    """The filters timed per point (search keyword arguments)."""
    if not synthetic:  # the bundled page dumps carry neither years nor authors
        return {"source": {"source": "bundled:000_"}}
    return {
        "source": {"source": "part-0"},
        "year": {"year": 2020},
        "since": {"since": 2021},
        "author": {"author": "Author7 Person7"},
        "source+year": {"source": "part-0", "year": 2020},
    }


# --- measuring helpers ----------------------------------------------------------------------
def rss_mb(pid: int | str = "self") -> float:
    """Resident set size of a process now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def dir_bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


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


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# --- corpus and queries ---------------------------------------------------------------------
def bundled_papers() -> list[Paper]:
    return dedupe(read_corpus(None).papers)


def base_settings(home: Path, models_home: Path | None, chroma_url: str | None = None) -> Settings:
    return Settings(home=home, models_home=models_home, chroma_url=chroma_url)


def make_embedder(settings: Settings, cls: type[Embedder] = Embedder, **extra) -> Embedder:
    """Built as `Assistant` builds it (the ONNX export in the models dir is reused)."""
    return cls(
        settings.models.embedding_model,
        batch_size=settings.models.embed_batch_size,
        n_threads=settings.models.n_threads,
        cache_dir=settings.models_dir / "embeddings",
        **extra,
    )


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


class SentenceMixEmbedder(Embedder):
    """Chunk vectors near what the real model gives, without embedding every chunk: synthetic
    abstracts are made of bundled sentences, so a chunk's vector is the normalised mean of its
    sentences' real embeddings (computed once, `sentence_vectors_step`), plus a little noise.

    Random unit vectors are the worst case for HNSW (no clusters: every insertion searches a graph
    with no structure), and its insertion cost grows much faster with them than with real embeddings
    (BENCHMARKS "Scale")."""

    def __init__(self, *args, seed: int = 0, table: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.rng = np.random.default_rng(seed)
        data = np.load(table)
        self.table = data["vectors"]
        self.row: dict[str, int] = {}
        for i, sentence in enumerate(data["sentences"].tolist()):
            for key in (sentence, "^" + sentence[:40], "$" + sentence[-40:]):
                self.row.setdefault(key, i)

    def _rows(self, text: str) -> list[int]:
        rows = []
        for sentence in split_sentences(text):
            for key in (sentence, "^" + sentence[:40], "$" + sentence[-40:]):  # cut at a chunk's edge
                if key in self.row:
                    rows.append(self.row[key])
                    break
        return rows or [int(self.rng.integers(len(self.table)))]

    def encode(self, texts: list[str], progress=None) -> np.ndarray:
        vectors = np.stack([self.table[self._rows(text)].mean(axis=0) for text in texts])
        vectors += 0.01 * self.rng.standard_normal(vectors.shape).astype(np.float32)
        if progress:
            progress(len(texts))
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)


def sentence_vectors_step(path: str, models_home: str | None) -> dict:
    """The real model's embedding of every bundled sentence, saved once to `path` (.npz)."""
    if Path(path).exists():
        return {"path": path}
    settings = base_settings(Path(path).parent, Path(models_home) if models_home else None)
    sentences = sorted({s for p in bundled_papers() for s in split_sentences(p.abstract)})
    t0 = time.perf_counter()
    vectors = make_embedder(settings).encode(sentences)
    np.savez(path, sentences=np.array(sentences), vectors=vectors.astype(np.float32))
    return {"path": path, "sentences": len(sentences), "embed_s": time.perf_counter() - t0}


def fresh_title(rng: random.Random, words: list[str], taken: set[str]) -> str:
    while True:
        title = " ".join(rng.sample(words, rng.randint(4, 9)))
        title = title[0].upper() + title[1:]
        if title.lower() not in taken:
            taken.add(title.lower())
            return title


def write_synthetic_corpus(
    folder: Path, n_chunks: int, seed: int, settings: Settings, count_tokens: Callable, prefix: str = "part"
) -> dict:
    """JSON Lines files `{prefix}-0..7.jsonl` of papers of recombined bundled sentences until their chunks
    reach `n_chunks`; kept in `folder` and reused when it holds them already."""
    done = folder / "corpus.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    real = bundled_papers()
    rng = random.Random(seed)  # titles and abstracts as the previous version of this script drew them
    authors_rng = random.Random(seed + 7)
    sentences = [s for p in real for s in split_sentences(p.abstract)]
    lengths = [len(split_sentences(p.abstract)) for p in real]  # the real abstracts' length distribution
    words = sorted({w for p in real for w in p.title.split() if w.isalpha() and len(w) > 2})
    taken = {p.title.lower() for p in real}
    papers = chunks = 0
    expected_papers = max(1, n_chunks // 6)  # ~6 chunks a paper at 110 word pieces
    pool = max(50, expected_papers * AUTHORS_PER_PAPER // PAPERS_PER_AUTHOR)
    with ExitStack() as stack:
        files = [
            stack.enter_context(open(folder / f"{prefix}-{i}.jsonl", "w", encoding="utf-8"))
            for i in range(SYNTHETIC_SOURCES)
        ]
        while chunks < n_chunks:
            i = papers
            record = {
                "title": fresh_title(rng, words, taken),
                "abstract": " ".join(rng.sample(sentences, min(rng.choice(lengths), len(sentences)))),
                "year": 2016 + i % YEARS,
                "authors": [f"Author{a} Person{a}" for a in authors_rng.sample(range(pool), AUTHORS_PER_PAPER)],
            }
            paper = Paper(title=record["title"], abstract=record["abstract"], source="")
            chunks += len(chunk_paper(paper, count_tokens, settings.store.chunk_tokens, settings.store.chunk_overlap))
            files[i % SYNTHETIC_SOURCES].write(json.dumps(record) + "\n")
            papers += 1
    info = {"papers": papers, "chunks": chunks, "seed": seed, "chunk_tokens": settings.store.chunk_tokens}
    done.write_text(json.dumps(info))
    return info


def make_queries(n: int, seed: int, qa_path: Path | None) -> tuple[list[str], dict[str, int]]:
    """QA-file questions (if any) topped up with abstract sentences of 8-30 words; (queries, counts)."""
    questions = [item.question for item in load_qa(qa_path)][:n] if qa_path and qa_path.exists() else []
    rng = random.Random(seed + 1)
    pool = [s for p in bundled_papers() for s in split_sentences(p.abstract) if 8 <= len(s.split()) <= 30]
    sampled = rng.sample(pool, n - len(questions))
    return questions + sampled, {"qa_questions": len(questions), "abstract_sentences": len(sampled)}


# --- the steps (each in a fresh process) ------------------------------------------------------
def corpus_step(folder: str, n_chunks: int, seed: int, models_home: str | None, prefix: str = "part") -> dict:
    settings = base_settings(Path(folder), Path(models_home) if models_home else None)
    embedder = make_embedder(settings)
    t0 = time.perf_counter()
    info = write_synthetic_corpus(Path(folder), n_chunks, seed, settings, embedder.count_tokens, prefix)
    return {**info, "generate_s": time.perf_counter() - t0}


def read_papers(corpus: str | None) -> list[Paper]:
    return dedupe(read_corpus([corpus]).papers if corpus else read_corpus(None).papers)


def build_step(
    home: str, corpus: str | None, seed: int, models_home: str | None, chroma_url: str | None, table: str | None = None
) -> dict:
    """Index the bundled corpus (corpus None) or a synthetic one; where the time and memory went.
    Chunk vectors: random, or mixes of real sentence vectors when `table` is given."""
    settings = base_settings(Path(home), Path(models_home) if models_home else None, chroma_url)
    if table:
        embedder = make_embedder(settings, SentenceMixEmbedder, seed=seed, table=table)
    else:
        embedder = make_embedder(settings, RandomVectorEmbedder, seed=seed)
    embedder.encode_query("load the model")  # model load is not index-building work
    t0 = time.perf_counter()
    papers = read_papers(corpus)
    read_s = time.perf_counter() - t0
    totals: dict[str, float] = {}
    index = Index(settings, embedder)
    with (
        timed_calls(rag_index, "chunk_paper", totals, "chunking_s"),
        timed_calls(Ingester, "_embed_and_commit", totals, "embed_and_commit_s"),
        timed_calls(VectorStore, "add", totals, "chroma_add_s"),
        timed_calls(VectorStore, "delete", totals, "chroma_delete_s"),
        timed_calls(Catalog, "commit_batch", totals, "catalog_commit_s"),
        timed_calls(LexicalIndex, "build", totals, "bm25_build_s"),
        timed_calls(LexicalIndex, "save", totals, "bm25_save_s"),
        timed_calls(VectorStore, "snapshot", totals, "chroma_snapshot_s"),
        timed_calls(rag_index, "file_manifest", totals, "manifest_s"),
    ):
        t0 = time.perf_counter()
        report = Ingester(index).ingest(papers)
        build_s = time.perf_counter() - t0
    chunks = index.catalog.chunk_count()
    index.close()
    return {
        "papers": len(papers),
        "chunks": chunks,
        "read_s": read_s,
        "build_s": build_s,
        "build_ms_per_chunk": build_s / chunks * 1000,
        "build_parts": {**totals, "random_vectors_s": report.embed_seconds},
        "disk_bytes": index_sizes(settings.index_dir),
        "build_peak_rss_mb": peak_rss_mb(),
    }


def ingest_ratio_step(home: str, corpus: str, models_home: str | None, chroma_url: str | None) -> dict:
    """More papers, embedded by the real model, ingested into the index of this size, vs the embedder
    alone on the same chunk texts (embedded first, then ingested, then embedded again: the load of
    the machine hits both sides)."""
    settings = base_settings(Path(home), Path(models_home) if models_home else None, chroma_url)
    embedder = make_embedder(settings)
    embedder.encode_query("load the model")
    papers = read_papers(corpus)
    texts = [
        c.embedded_text
        for p in papers
        for c in chunk_paper(p, embedder.count_tokens, settings.store.chunk_tokens, settings.store.chunk_overlap)
    ]
    load_start = load_average()
    t0 = time.perf_counter()
    embedder.encode(texts)
    alone_1 = time.perf_counter() - t0
    totals: dict[str, float] = {}
    index = Index(settings, embedder)
    with timed_calls(Ingester, "_embed_and_commit", totals, "embed_and_commit_s"):
        t0 = time.perf_counter()
        report = Ingester(index).ingest(papers)
        ingest_s = time.perf_counter() - t0
    index.close()
    t0 = time.perf_counter()
    embedder.encode(texts)
    alone_2 = time.perf_counter() - t0
    alone = (alone_1 + alone_2) / 2
    streaming = totals["embed_and_commit_s"]
    return {
        "chunks": len(texts),
        "chunks_added": report.chunks_added,
        "embedder_alone_s": [alone_1, alone_2],
        "embed_and_commit_s": streaming,
        "ingest_s": ingest_s,
        "fixed_s": ingest_s - streaming,
        "ratio_streaming": alone / streaming,
        "ratio_whole_ingest": alone / ingest_s,
        "load_average_start": load_start,
        "load_average_end": load_average(),
    }


def query_step(
    home: str,
    queries: list[str],
    synthetic: bool,
    models_home: str | None,
    chroma_url: str | None,
    llm: str | None,
    server_pid: int | None,
) -> dict:
    """Open the index as `rag` would, then time every query in every mode (modes interleaved)."""
    settings = base_settings(Path(home), Path(models_home) if models_home else None, chroma_url)
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
    filters = filters_for(synthetic)
    t0 = time.perf_counter()
    table = index.paper_table(lexical)  # what the first filtered search reads
    paper_table_s = time.perf_counter() - t0
    rss_loaded = rss_mb()
    rss_llm = None
    if llm:
        from rag.backends.llm import make_generator

        generator = make_generator(settings, llm)
        list(generator.stream([{"role": "user", "content": "Say hello. " * 100}], max_tokens=4))
        rss_llm = rss_mb()
    for query in queries[:WARMUP_QUERIES]:
        for mode in MODES:
            retriever.search(query, K, mode=mode)
        for given in filters.values():
            retriever.search(query, K, **given)

    names = [*MODES, *(f"hybrid+{f}" for f in filters), *PARTS]
    times: dict[str, list[float]] = {m: [] for m in names}
    kept = {f: table.mask(Filters.of(**given), index.catalog) for f, given in filters.items()}
    dense_found: dict[str, list[int]] = {f: [] for f in filters}
    for query in queries:
        # Interleaved, so that a burst of load from other processes hits every mode alike.
        for mode in MODES:
            t0 = time.perf_counter()
            retriever.search(query, K, mode=mode)
            times[mode].append(time.perf_counter() - t0)
        for name, given in filters.items():
            t0 = time.perf_counter()
            hits = retriever.search(query, K, **given)
            times[f"hybrid+{name}"].append(time.perf_counter() - t0)
            dense_found[name].append(sum(1 for h in hits if h.dense_rank is not None))
        t0 = time.perf_counter()
        vector = embedder.encode_query(query)
        times["part:embed_query"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        index.vectors.query(vector, settings.retrieval.candidates)
        times["part:chroma_query"].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        lexical.search(query, settings.retrieval.candidates)
        times["part:bm25_search"].append(time.perf_counter() - t0)
        first = next(iter(filters.values()))
        t0 = time.perf_counter()
        mask = table.mask(Filters.of(**first), index.catalog)
        times["part:filter_mask"].append(time.perf_counter() - t0)
        if "author" in filters:
            mask = kept["author"]
            t0 = time.perf_counter()
            retriever._dense(vector, settings.retrieval.candidates, table, mask)
            times["part:dense_exact_author"].append(time.perf_counter() - t0)
    chunks = index.catalog.chunk_count()
    papers = len(table)
    index.close()
    return {
        "chunks": chunks,
        "papers": papers,
        "embedder_load_s": embedder_s,
        "open_s": open_s,
        "bm25_load_s": bm25_load_s,
        "first_query_s": first_query_s,
        "paper_table_s": paper_table_s,
        "rss_before_load_mb": rss_start,
        "rss_after_load_mb": rss_loaded,
        "rss_with_llm_mb": rss_llm,
        "server_rss_mb": rss_mb(server_pid) if server_pid else None,
        "peak_rss_mb": peak_rss_mb(),
        "latency": {name: summary_ms(values) for name, values in times.items() if values},
        "filters": filters,
        "filter_share": {f: float(m.mean()) for f, m in kept.items()},
        "dense_hits_in_top_k": {f: sum(v) / len(v) for f, v in dense_found.items()},
    }


def in_new_process(fn: Callable, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- the Chroma server ----------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def chroma_server(path: Path) -> Iterator[tuple[str, int]]:
    """`chroma run` on loopback for the duration of the block; (url, pid)."""
    port = free_port()
    chroma = Path(sys.executable).with_name("chroma")
    with open(path.with_suffix(".log"), "w") as log:
        process = subprocess.Popen(
            [str(chroma), "run", "--path", str(path), "--host", "127.0.0.1", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        process.terminate()
        process.wait(30)


# --- reporting ------------------------------------------------------------------------------
def growth_per_10x(small: tuple[int, float], large: tuple[int, float]) -> float:
    """How much a cost grows per 10x more chunks, between two points (chunks, cost)."""
    decades = math.log10(large[0] / small[0])
    return (large[1] / small[1]) ** (1 / decades) if decades > 0 and small[1] > 0 else float("nan")


def print_tables(points: list[dict]) -> None:
    mb = 1e6
    print(
        "\n| point | chunks | build s | ms/chunk | chunking s | Chroma add s | catalog s | BM25 s | snapshot+manifest s | "
        "catalog MB | Chroma MB | BM25 MB | build peak RSS MB | load avg start / end |"
    )
    print("|---" * 15 + "|")
    for p in points:
        b = p["build"]
        d, parts = b["disk_bytes"], b["build_parts"]
        print(
            f"| {p['name']} | {b['chunks']} | {b['build_s']:.1f} | {b['build_ms_per_chunk']:.2f} | "
            f"{parts.get('chunking_s', 0):.1f} | {parts.get('chroma_add_s', 0):.1f} | {parts.get('catalog_commit_s', 0):.1f} | "
            f"{parts.get('bm25_build_s', 0) + parts.get('bm25_save_s', 0):.1f} | "
            f"{parts.get('chroma_snapshot_s', 0) + parts.get('manifest_s', 0):.1f} | {d['catalog'] / mb:.0f} | "
            f"{d['chroma'] / mb:.0f} | {d['lexical'] / mb:.0f} | {b['build_peak_rss_mb']:.0f} | "
            f"{p['load_build'][0]} / {p['load_build'][1]} |"
        )
    ratios = [p for p in points if p.get("ingest_ratio")]
    if ratios:
        print(
            "\n| point | sample chunks | embedder alone s | embed+commit s | ratio (streaming) | fixed s per ingest | load avg |"
        )
        print("|---" * 7 + "|")
        for p in ratios:
            r = p["ingest_ratio"]
            print(
                f"| {p['name']} | {r['chunks']} | {sum(r['embedder_alone_s']) / 2:.1f} | {r['embed_and_commit_s']:.1f} | "
                f"{r['ratio_streaming']:.2f} | {r['fixed_s']:.1f} | {r['load_average_start'][0]} / {r['load_average_end'][0]} |"
            )
    print(
        "\n| point | open s | BM25 load s | filter table s | RSS after load MB | with LLM MB | server RSS MB | load avg start / end |"
    )
    print("|---" * 8 + "|")
    for p in points:
        q = p["query"]
        llm = f"{q['rss_with_llm_mb']:.0f}" if q.get("rss_with_llm_mb") else "-"
        server = f"{q['server_rss_mb']:.0f}" if q.get("server_rss_mb") else "-"
        print(
            f"| {p['name']} | {q['open_s']:.2f} | {q['bm25_load_s']:.2f} | {q['paper_table_s']:.2f} | "
            f"{q['rss_after_load_mb']:.0f} | {llm} | {server} | {p['load_query'][0]} / {p['load_query'][1]} |"
        )
    names = sorted({n for p in points for n in p["query"]["latency"]}, key=lambda n: (n.startswith("part"), n))
    print("\n| point | " + " | ".join(f"{n} p50 / p95 ms" for n in names) + " |")
    print("|---" * (len(names) + 1) + "|")
    for p in points:
        lat = p["query"]["latency"]
        print(
            f"| {p['name']} | "
            + " | ".join(f"{lat[n]['p50_ms']:.1f} / {lat[n]['p95_ms']:.1f}" if n in lat else "-" for n in names)
            + " |"
        )
    print("\n| point | filter | share of papers | dense hits in top 10 | p95 filtered / unfiltered hybrid |")
    print("|---" * 5 + "|")
    for p in points:
        q = p["query"]
        for f, share in q["filter_share"].items():
            ratio = q["latency"][f"hybrid+{f}"]["p95_ms"] / q["latency"]["hybrid"]["p95_ms"]
            print(f"| {p['name']} | {f} | {share:.3f} | {q['dense_hits_in_top_k'][f]:.1f} | {ratio:.2f} |")
    if len(points) > 1:
        print("\n| growth per 10x chunks | stat | " + " | ".join(names) + " |")
        print("|---|---" + "|---" * len(names) + "|")
        for small, large in itertools.pairwise(points):
            if small.get("server") != large.get("server"):
                continue
            for stat in ("p50_ms", "p95_ms"):
                ratios = [
                    growth_per_10x(
                        (small["query"]["chunks"], small["query"]["latency"][n][stat]),
                        (large["query"]["chunks"], large["query"]["latency"][n][stat]),
                    )
                    if n in small["query"]["latency"] and n in large["query"]["latency"]
                    else float("nan")
                    for n in names
                ]
                print(
                    f"| {small['name']} -> {large['name']} | {stat[:3]} | "
                    + " | ".join(f"{r:.2f}x" for r in ratios)
                    + " |"
                )


# --- main -----------------------------------------------------------------------------------
def measure_point(
    name: str,
    root: Path,
    corpus: Path | None,
    queries: list[str],
    args,
    real_index: Path | None,
    models_home: str,
    server: bool = False,
) -> dict:
    home = root / name
    point: dict = {"name": name, "server": server}
    with chroma_server(root / f"{name}-chroma") if server else _nothing() as running:
        url, pid = running if running else (None, None)
        point["load_build"] = [load_average()[0]]
        print(f"[{name}] building (load avg {load_average()}) ...", flush=True)
        build = in_new_process(
            build_step, str(home), str(corpus) if corpus else None, args.seed, models_home, url, args.table
        )
        point["load_build"].append(load_average()[0])
        print(
            f"[{name}] {build['chunks']} chunks in {build['build_s']:.1f} s ({build['build_ms_per_chunk']:.2f} ms/chunk)",
            flush=True,
        )
        query_home = home
        if corpus is None and real_index is not None and not server:
            query_home = root / "bundled-real"
            shutil.copytree(real_index, query_home / "index")
        point["load_query"] = [load_average()[0]]
        query = in_new_process(
            query_step, str(query_home), queries, corpus is not None, models_home, url, args.llm, pid
        )
        point["load_query"].append(load_average()[0])
        print(
            f"[{name}] hybrid p95 {query['latency']['hybrid']['p95_ms']:.1f} ms; RSS {query['rss_after_load_mb']:.0f} MB",
            flush=True,
        )
        if args.ingest_sample and corpus is not None and not server:
            sample = Path(args.corpus_cache) / f"sample-{args.ingest_sample}"
            in_new_process(corpus_step, str(sample), args.ingest_sample, args.seed + 99, models_home, "sample")
            point["ingest_ratio"] = in_new_process(ingest_ratio_step, str(home), str(sample), models_home, url)
            print(f"[{name}] ingest vs embedder: {point['ingest_ratio']['ratio_streaming']:.2f}", flush=True)
    point.update(
        build=build,
        query=query,
        query_vectors="real" if query_home != home else ("sentence mixes" if args.table else "random"),
    )
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(root / f"{name}-chroma", ignore_errors=True)
    return point


@contextmanager
def _nothing() -> Iterator[None]:
    yield None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[10_000, 100_000], help="synthetic corpus sizes in chunks"
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--qa", type=Path, default=DEFAULT_QA, help="QA file whose questions are used as queries")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--no-bundled", action="store_true", help="skip the bundled-corpus point")
    parser.add_argument("--chroma-server", action="store_true", help="also build and query each size on `chroma run`")
    parser.add_argument("--server-only", action="store_true", help="only the Chroma-server points")
    parser.add_argument("--llm", help="also measure RSS with this language model loaded (e.g. qwen2.5-coder-1.5b)")
    parser.add_argument("--ingest-sample", type=int, default=0, help="chunks embedded for real into each index")
    parser.add_argument("--corpus-cache", default=str(Path(tempfile.gettempdir()) / "rag-scale-corpus"))
    parser.add_argument(
        "--vectors",
        choices=("random", "sentences"),
        default="random",
        help="chunk vectors: random unit vectors, or means of real bundled-sentence vectors",
    )
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    args.table = None

    settings = Settings()
    models_home = str(settings.models_dir)  # the ONNX export and assembled models are reused
    real_index = settings.index_dir if (settings.index_dir / "catalog.sqlite").exists() else None
    queries, query_counts = make_queries(args.queries, args.seed, args.qa)
    started = time.time()
    root = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    points: list[dict] = []
    if args.vectors == "sentences":
        Path(args.corpus_cache).mkdir(parents=True, exist_ok=True)
        args.table = str(Path(args.corpus_cache) / "sentence-vectors.npz")
        print(f"sentence vectors: {in_new_process(sentence_vectors_step, args.table, models_home)}", flush=True)
    try:
        if not args.no_bundled and not args.server_only:
            points.append(measure_point("bundled", root, None, queries, args, real_index, models_home))
        for size in args.sizes:
            corpus = Path(args.corpus_cache) / f"synthetic-{size}-seed{args.seed}"
            info = in_new_process(corpus_step, str(corpus), size, args.seed, models_home)
            print(f"corpus {corpus}: {info['papers']} papers, {info['chunks']} chunks", flush=True)
            label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"
            if not args.server_only:
                points.append(measure_point(f"synthetic-{label}", root, corpus, queries, args, None, models_home))
            if args.chroma_server or args.server_only:
                points.append(
                    measure_point(
                        f"synthetic-{label}-server", root, corpus, queries, args, None, models_home, server=True
                    )
                )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print_tables(points)
    result = {
        "command": "python benchmarks/scale.py " + " ".join(sys.argv[1:]),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "cpu_count": os.cpu_count(),
        "vectors": args.vectors,
        "k": K,
        "candidates": settings.retrieval.candidates,
        "queries": query_counts,
        "points": points,
    }
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
        print(f"\nresults written to {args.output}")


if __name__ == "__main__":
    main()
