"""Build one synthetic point of `scale.py` into a kept data dir, and query it with any version of the code.

`scale.py` builds every point in a temp dir and removes it; a 1M-chunk build takes ~20 min, so a change
to the query path is better measured on one kept index, side by side with the previous version:

    python benchmarks/index_point.py build /tmp/h1m --size 1000000           # ~20 min, ~4 GB
    python benchmarks/index_point.py query /tmp/h1m -o new.json
    git worktree add /tmp/before HEAD~1
    python benchmarks/index_point.py query /tmp/h1m --code /tmp/before -o old.json
    python benchmarks/index_point.py ingest /tmp/h1m --sample 1500 -o ingest.json   # adds papers to it

Run with RAG_HOME set to a data dir whose models are assembled (the query embedder is the real one).
Chunk vectors are mixes of real sentence vectors (`scale.py --vectors sentences`); the corpus comes
from scale.py's corpus cache (written there on first use). Queries: questions of the dev set topped
up with bundled sentences, as in scale.py.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def first_filtered_searches(scale, home: str, queries: list[str], models_home: str) -> dict[str, list[float]]:
    """What a new filter costs: the first searches under each of scale.py's filters in a fresh process
    (after one unfiltered search has loaded Chroma's graph), in ms."""
    import time

    from rag.answer.retrieve import Retriever
    from rag.store.index import Index

    settings = scale.base_settings(Path(home), Path(models_home))
    index = Index(settings, scale.make_embedder(settings))
    index.open_for_search()
    retriever = Retriever(index, settings)
    retriever.search(queries[0], scale.K)
    out = {}
    for name, given in scale.filters_for(True).items():
        times = []
        for query in queries[1:4]:
            t0 = time.perf_counter()
            retriever.search(query, scale.K, **given)
            times.append(round((time.perf_counter() - t0) * 1000, 1))
        out[name] = times
    index.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=("build", "query", "ingest"))
    parser.add_argument("home", type=Path, help="data dir of the index (built there, queried there)")
    parser.add_argument("--size", type=int, default=1_000_000, help="chunks (build)")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sample", type=int, default=1500, help="chunks embedded for real and ingested (ingest)")
    parser.add_argument("--code", type=Path, help="a checkout of another version to query with (query)")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    code = (args.code or HERE.parent).resolve()
    sys.path[:0] = [str(code), str(code / "benchmarks")]
    import scale  # the benchmark of that version

    import rag
    from rag.settings import Settings

    if not Path(rag.__file__).resolve().is_relative_to(code):
        sys.exit(f"rag was imported from {rag.__file__}, not from {code}")
    models_home = str(Settings().models_dir)
    cache = Path(scale.tempfile.gettempdir()) / "rag-scale-corpus"
    table = cache / "sentence-vectors.npz"
    if args.step == "build":
        cache.mkdir(parents=True, exist_ok=True)
        scale.sentence_vectors_step(str(table), models_home)
        corpus = cache / f"synthetic-{args.size}-seed{args.seed}"
        scale.corpus_step(str(corpus), args.size, args.seed, models_home)  # reused when written before
        result = scale.build_step(str(args.home), str(corpus), args.seed, models_home, None, str(table))
    elif args.step == "ingest":  # scale.py's --ingest-sample on the kept index
        sample = cache / f"sample-{args.sample}"
        scale.corpus_step(str(sample), args.sample, args.seed + 99, models_home, "sample")
        result = scale.ingest_ratio_step(str(args.home), str(sample), models_home, None)
        print(
            f"ingest vs embedder alone: {result['ratio_streaming']:.2f} (streaming), "
            f"fixed {result['fixed_s']:.1f} s per ingest"
        )
    else:
        queries, _ = scale.make_queries(args.queries, args.seed, HERE.parents[1] / "shared" / "eval" / "dev.jsonl")
        start = scale.load_average()
        result = scale.query_step(str(args.home), queries, True, models_home, None, None, None)
        result["first_filtered_search_ms"] = first_filtered_searches(scale, str(args.home), queries, models_home)
        result["load"] = [start, scale.load_average()]
        latency, base = result["latency"], result["latency"]["hybrid"]["p95_ms"]
        print(
            f"{code}: load {result['load'][0][0]:.2f} -> {result['load'][1][0]:.2f}; "
            f"hybrid p50 / p95 {latency['hybrid']['p50_ms']:.1f} / {base:.1f} ms"
        )
        print("  first searches under a new filter (ms):", result["first_filtered_search_ms"])
        for name, share in result["filter_share"].items():
            x = latency[f"hybrid+{name}"]
            print(
                f"  {name} ({share:.2%} of papers): p50 / p95 {x['p50_ms']:.1f} / {x['p95_ms']:.1f} ms, "
                f"p95 / unfiltered {x['p95_ms'] / base:.2f}"
            )
    result["command"] = "python benchmarks/index_point.py " + " ".join(sys.argv[1:])
    if args.output:
        args.output.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
