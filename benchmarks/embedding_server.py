"""The client side of embeddings from an OpenAI-compatible server (`RAG_EMBEDDING_MODEL=openai:NAME`):
throughput and requests in flight by `RAG_EMBEDDING_CONCURRENCY`, and an ingest whose server fails
for good mid-run.

    python benchmarks/embedding_server.py [--latency 0.05] [--per-input 0.002] [--texts 2000]
        [--papers 600] [--concurrency 1 2 4 8] [-o results.json]

A fake server (`rag.testing.FakeEmbeddingServer`, in a process of its own so that it does not share
the client's interpreter) answers each request after `latency + per_input x inputs` seconds with
384-d vectors, however many requests it holds at once: a GPU server that batches concurrent
requests, seen from the client. Measured:
1. `OpenAIEmbedder.encode` of `--texts` chunk-sized texts (recombined sentences of the bundled
   abstracts), 16 a request, at each concurrency: chunks/s, the most requests the server held at
   once, and the ceiling the latency allows (concurrency x 16 / per-request latency).
2. `rag ingest` of an arXiv-format file of `--papers` papers into a fresh data dir (chunking,
   catalog, Chroma, BM25: the real index) at each concurrency: wall time, chunks/s, the share of it
   spent waiting for vectors.
3. The server failing for good mid-ingest (HTTP 500 after `--fail-at` of the requests): the exit code
   and error line, what was kept, and the same command again once the server is back, compared with
   an index built without failure (paper ids, chunk ids).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
DIMENSION = 384
BATCH = 16


def serve(port: int, latency: float, per_input: float) -> None:
    from rag.testing import FakeEmbeddingServer

    server = FakeEmbeddingServer(latency, per_input, dimension=DIMENSION, port=port)
    print(server.url, flush=True)
    server.thread.join()


def start_server(latency: float, per_input: float) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", "0", "--latency", str(latency), "--per-input", str(per_input)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    return process, url


def control(url: str, **body: object) -> dict:
    root = url.removesuffix("/v1")
    if body:
        return httpx.post(root + "/control", json=body).json()
    return httpx.get(root + "/stats").json()


def chunk_texts(n: int) -> list[str]:
    from rag.corpus.chunking import split_sentences
    from rag.corpus.readers import read_corpus

    sentences = [s for p in read_corpus(None).papers for s in split_sentences(p.abstract)]
    rng = random.Random(7)
    return [" ".join(rng.choice(sentences) for _ in range(3)) for _ in range(n)]


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def measure_encode(url: str, texts: list[str], concurrency: int, latency: float, per_input: float) -> dict:
    from rag.backends.remote_embeddings import OpenAIEmbedder

    embedder = OpenAIEmbedder("fake", url, batch_size=BATCH, concurrency=concurrency, retries=2)
    embedder.encode(texts[:BATCH])  # connect first
    control(url, reset=True)
    started = time.perf_counter()
    vectors = embedder.encode(texts)
    seconds = time.perf_counter() - started
    embedder.close()
    stats = control(url)
    assert vectors.shape == (len(texts), DIMENSION)
    ceiling = concurrency * BATCH / (latency + per_input * BATCH)
    return {
        "concurrency": concurrency,
        "texts": len(texts),
        "seconds": round(seconds, 2),
        "chunks_per_s": round(len(texts) / seconds, 1),
        "ceiling_chunks_per_s": round(ceiling, 1),
        "max_in_flight": stats["max_in_flight"],
        "requests": stats["answered"],
        "load": load(),
    }


def rag_ingest(home: Path, corpus: Path, url: str, concurrency: int) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        RAG_HOME=str(home),
        RAG_EMBEDDING_MODEL="openai:fake",
        RAG_EMBEDDING_BASE_URL=url,
        RAG_EMBEDDING_CONCURRENCY=str(concurrency),
        RAG_REQUEST_RETRIES="2",
        HF_HUB_OFFLINE="1",
    )
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", "ingest", "--json", str(corpus)], env=env, capture_output=True, text=True
    )


def measure_ingest(url: str, corpus: Path, concurrency: int) -> dict:
    with tempfile.TemporaryDirectory() as home:
        control(url, reset=True)
        started = time.perf_counter()
        done = rag_ingest(Path(home), corpus, url, concurrency)
        wall = time.perf_counter() - started
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        stats = control(url)
    return {
        "concurrency": concurrency,
        "papers": report["added"],
        "chunks": report["chunks_added"],
        "wall_s": round(wall, 1),
        "ingest_s": round(report["seconds"], 1),
        "chunks_per_s": round(report["chunks_added"] / report["seconds"], 1),
        "embed_share": round(report["embed_seconds"] / report["seconds"], 2),
        "max_in_flight": stats["max_in_flight"],
        "load": load(),
    }


def index_ids(home: Path) -> tuple[list[str], list[str], int]:
    from rag.store.catalog import Catalog

    catalog = Catalog(home / "index" / "catalog.sqlite")
    try:
        papers = sorted(catalog.paper_ids())
        chunks = sorted(catalog.all_chunk_ids())
    finally:
        catalog.close()
    import chromadb

    client = chromadb.PersistentClient(path=str(home / "index" / "chroma"))
    vectors = client.get_collection("chunks").count()
    return papers, chunks, vectors


def failure_check(url: str, corpus: Path, concurrency: int, papers: int, fail_at: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        home, reference = Path(tmp) / "home", Path(tmp) / "reference"
        control(url, reset=True, heal=True)
        assert rag_ingest(reference, corpus, url, concurrency).returncode == 0
        requests = control(url)["answered"]
        control(url, reset=True, fail_after=int(requests * fail_at))  # then HTTP 500 for good
        failed = rag_ingest(home, corpus, url, concurrency)
        kept = index_ids(home)
        control(url, heal=True)
        again = rag_ingest(home, corpus, url, concurrency)
        report = json.loads(again.stdout)
        resumed, full = index_ids(home), index_ids(reference)
    error = failed.stderr.strip().splitlines()
    return {
        "requests_for_the_whole_corpus": requests,
        "requests_answered_before_failing": int(requests * fail_at),
        "failed_exit_code": failed.returncode,
        "failed_stderr_lines": len(error),
        "failed_error": error[-1] if error else "",
        "papers_kept_after_failure": len(kept[0]),
        "chunks_kept_after_failure": len(kept[1]),
        "vectors_kept_after_failure": kept[2],
        "rerun_exit_code": again.returncode,
        "rerun_added": report["added"],
        "rerun_unchanged": report["unchanged"],
        "same_papers_as_reference": resumed[0] == full[0],
        "same_chunks_as_reference": resumed[1] == full[1],
        "papers": len(resumed[0]),
        "chunks": len(resumed[1]),
        "vectors": resumed[2],
        "expected_papers": papers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--per-input", type=float, default=0.002, help="seconds per text of a request")
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--papers", type=int, default=600)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--fail-at", type=float, default=0.6, help="share of the requests answered before failing")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve, args.latency, args.per_input)
        return
    process, url = start_server(args.latency, args.per_input)
    results: dict = {"latency_s": args.latency, "per_input_s": args.per_input, "batch": BATCH, "load_start": load()}
    try:
        texts = chunk_texts(args.texts)
        print("| concurrency | chunks/s | ceiling chunks/s | max requests in flight | load |")
        results["encode"] = []
        for concurrency in args.concurrency:
            row = measure_encode(url, texts, concurrency, args.latency, args.per_input)
            results["encode"].append(row)
            print(
                f"| {concurrency} | {row['chunks_per_s']} | {row['ceiling_chunks_per_s']} | {row['max_in_flight']} "
                f"| {row['load']} |",
                flush=True,
            )
        with tempfile.TemporaryDirectory() as tmp:
            corpus = write_arxiv_file(Path(tmp) / "arxiv.json", args.papers)
            print(
                "| concurrency | papers | chunks | ingest s | chunks/s | share waiting for vectors | max in flight | load |"
            )
            results["ingest"] = []
            for concurrency in args.concurrency:
                row = measure_ingest(url, corpus, concurrency)
                results["ingest"].append(row)
                print(
                    f"| {concurrency} | {row['papers']} | {row['chunks']} | {row['ingest_s']} | {row['chunks_per_s']} "
                    f"| {row['embed_share']} | {row['max_in_flight']} | {row['load']} |",
                    flush=True,
                )
            results["failure"] = failure_check(url, corpus, 4, args.papers, args.fail_at)
            print(json.dumps(results["failure"], indent=2))
    finally:
        process.terminate()
        process.wait()
    results["load_end"] = load()
    if args.output:
        args.output.write_text(json.dumps(results, indent=2) + "\n")


def write_arxiv_file(path: Path, papers: int) -> Path:
    """An arXiv-format file whose abstracts are several sentences of the bundled corpus (2-4 chunks each)."""
    from rag.corpus.chunking import split_sentences
    from rag.corpus.readers import read_corpus
    from rag.testing import arxiv_record

    sentences = [s for p in read_corpus(None).papers for s in split_sentences(p.abstract)]
    rng = random.Random(11)
    with open(path, "w", encoding="utf-8") as f:
        for i in range(papers):
            abstract = " ".join(rng.choice(sentences) for _ in range(rng.randint(6, 10)))
            f.write(json.dumps(arxiv_record(i, abstract=abstract)) + "\n")
    return path


if __name__ == "__main__":
    main()
