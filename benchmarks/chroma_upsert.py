"""Chroma's embedded upsert on its own: milliseconds per vector as the collection grows, by kind of
vector and collection setting.

    RAG_HOME=<data dir with an index> python benchmarks/chroma_upsert.py [--n 100000] VARIANT [VARIANT ...]

Variants (words joined by "-"): `random` (random unit vectors) or `real` (mixes of two real chunk
vectors of the index in RAG_HOME, plus noise: clustered like real embeddings); `seq` (ids
p00000001, ...; default: hash-like ids as ours); `nometa` (no source/year metadata); `add` (add,
not upsert); `efc40` (ef_construction 40 instead of 100); `bigsync` (sync_threshold 1M, batch_size
10k). Batches of 400 vectors (64 papers), as `rag ingest` sends them. Prints, per variant, the
mean ms per vector over each tenth of the run.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
import time

import numpy as np

from rag.settings import Settings
from rag.store.vectors import VectorStore

BATCH = 400


def real_vectors() -> np.ndarray:
    store = VectorStore(Settings().index_dir / "chroma")
    got = store.collection.get(include=["embeddings"], limit=100_000)
    return np.asarray(got["embeddings"], dtype=np.float32)


def run(n: int, variant: str, real: np.ndarray | None) -> dict:
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    words = set(variant.split("-"))
    hnsw: dict = {"space": "cosine"}
    if "efc40" in words:
        hnsw["ef_construction"] = 40
    if "bigsync" in words:
        hnsw.update(sync_threshold=1_000_000, batch_size=10_000)
    rng = np.random.default_rng(5)
    client = chromadb.PersistentClient(path=tempfile.mkdtemp(), settings=ChromaSettings(anonymized_telemetry=False))
    collection = client.create_collection("chunks", configuration={"hnsw": hnsw}, embedding_function=None)
    write = collection.add if "add" in words else collection.upsert
    tenths, done, started = [], 0, time.perf_counter()
    mark = started
    while done < n:
        numbers = range(done, done + BATCH)
        if "seq" in words:
            ids = [f"p{i:08d}" for i in numbers]
        else:
            ids = [hashlib.sha1(str(i).encode()).hexdigest()[:16] + f":{i % 9}" for i in numbers]
        if real is not None and "real" in words:
            a, b = rng.integers(0, len(real), BATCH), rng.integers(0, len(real), BATCH)
            w = rng.random((BATCH, 1)).astype(np.float32)
            vectors = w * real[a] + (1 - w) * real[b] + 0.02 * rng.standard_normal((BATCH, 384)).astype(np.float32)
        else:
            vectors = rng.standard_normal((BATCH, 384)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        extra = (
            {}
            if "nometa" in words
            else {"metadatas": [{"source": f"s{i % 7}", "year": 2000 + i % 25} for i in numbers]}
        )
        write(ids=ids, embeddings=vectors, **extra)
        done += BATCH
        if done % (n // 10) < BATCH:
            now = time.perf_counter()
            tenths.append(round((now - mark) / (n // 10) * 1000, 3))
            mark = now
    return {
        "variant": variant,
        "n": n,
        "total_s": round(time.perf_counter() - started, 1),
        "ms_per_vector_by_tenth": tenths,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variants", nargs="+")
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()
    real = real_vectors() if any("real" in v.split("-") for v in args.variants) else None
    for variant in args.variants:
        print(json.dumps(run(args.n, variant, real)), flush=True)


if __name__ == "__main__":
    main()
