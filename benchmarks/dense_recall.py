"""Dense recall of papers far from the rest of a corpus: Chroma's HNSW graph against an exact scan.

The shape of the defect (issue 24, item 1): three papers on their own topics are indexed first, then
thousands of papers that crowd a few regions of the space (near-duplicates). A query on one of the three
topics must find its paper. For each size and `ef_search`, this counts how many of the 9 lone chunks
(3 papers x 3 chunks, 4 seeds) Chroma's graph does not return among the 10 nearest to their own
vector, and times a query (k=40) through the graph and through the exact scan `rag.answer.retrieve` uses
below `RAG_EXACT_SEARCH_MB` (`KeptVectors.nearest`).

    python benchmarks/dense_recall.py --sizes 10000 100000 --seeds 4 -o benchmarks/results-dense-recall.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from rag.store.filters import KeptVectors


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def run(size: int, seed: int, ef_values: list[int], noise: float, folder: Path) -> dict:
    import chromadb
    from chromadb.config import Settings

    rng = np.random.default_rng(seed)
    d = 384
    centres = unit(rng.normal(size=(40, d)) + rng.normal(size=d) * 0.6)
    lone = unit(np.repeat(unit(rng.normal(size=(3, d))), 3, axis=0) + rng.normal(size=(9, d)) * 0.03)
    crowd = unit(centres[rng.integers(0, 40, size)] + rng.normal(size=(size, d)) * noise)
    shutil.rmtree(folder, ignore_errors=True)
    settings = Settings(anonymized_telemetry=False)
    client = chromadb.PersistentClient(str(folder), settings=settings)
    collection = client.get_or_create_collection(
        "chunks", configuration={"hnsw": {"space": "cosine"}}, embedding_function=None
    )
    collection.add(ids=[f"lone{i}" for i in range(9)], embeddings=lone)
    for start in range(0, size, 1000):
        part = crowd[start : start + 1000]
        collection.add(ids=[f"c{start + i}" for i in range(len(part))], embeddings=part)
    queries = crowd[rng.integers(0, size, 50)]
    out: dict = {"size": size, "seed": seed, "graph": {}}
    for ef in ef_values:
        collection.modify(configuration={"hnsw": {"ef_search": ef}})
        client.close()  # Chroma applies a new ef_search when the collection is opened again
        client = chromadb.PersistentClient(str(folder), settings=settings)
        collection = client.get_collection("chunks")
        found = collection.query(query_embeddings=lone, n_results=10, include=[])["ids"]
        missed = sum(f"lone{i}" not in near for i, near in enumerate(found))
        t0 = time.perf_counter()
        for q in queries:
            collection.query(query_embeddings=[q], n_results=40, include=["distances"])
        out["graph"][ef] = {"missed": missed, "query_ms": (time.perf_counter() - t0) / len(queries) * 1000}
    client.close()
    kept = KeptVectors.of([f"lone{i}" for i in range(9)] + [f"c{i}" for i in range(size)], np.vstack([lone, crowd]))
    exact_missed = sum(f"lone{i}" not in [cid for cid, _ in kept.nearest(lone[i], 10)] for i in range(9))
    t0 = time.perf_counter()
    for q in queries:
        kept.nearest(q, 40)
    out["exact"] = {"missed": exact_missed, "query_ms": (time.perf_counter() - t0) / len(queries) * 1000}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--ef", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument("--noise", type=float, default=0.05, help="spread of the crowded papers around their centre")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            runs = [run(size, seed, args.ef, args.noise, Path(tmp) / "store") for seed in range(args.seeds)]
            lone = 9 * len(runs)
            row: dict = {"size": size, "lone_chunks": lone, "load": os.getloadavg()}
            for ef in args.ef:
                row[f"graph_ef{ef}_missed"] = sum(r["graph"][ef]["missed"] for r in runs)
                row[f"graph_ef{ef}_query_ms"] = round(float(np.mean([r["graph"][ef]["query_ms"] for r in runs])), 2)
            row["exact_missed"] = sum(r["exact"]["missed"] for r in runs)
            row["exact_query_ms"] = round(float(np.mean([r["exact"]["query_ms"] for r in runs])), 2)
            print(json.dumps(row), flush=True)
            results.append(row)
    if args.output:
        args.output.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
