"""The previous version of the index and this one, side by side on the same synthetic corpora in one run
(each size: one version's `benchmarks/scale.py`, then the other's, the order alternating from size to
size so that a change of the machine's load does not favour one side), reported as ratios new / old.

    python benchmarks/scale_compare.py --old REV [--sizes 10000 100000] [--queries 200] [-o results.json]

The old version runs from `git archive REV` in a temp dir (its own scale.py, on its own code, with
this venv's packages); both draw the same papers (seed 5; the new script adds years' and authors'
files the old one ignores). Bundled point skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = {
    "build s": lambda p: p["build"]["build_s"],
    "Chroma upsert s": lambda p: p["build"]["build_parts"].get("chroma_add_s"),
    "chunking s": lambda p: p["build"]["build_parts"].get("chunking_s"),
    "disk MB": lambda p: sum(p["build"]["disk_bytes"].values()) / 1e6,
    "Chroma MB": lambda p: p["build"]["disk_bytes"]["chroma"] / 1e6,
    "catalog MB": lambda p: p["build"]["disk_bytes"]["catalog"] / 1e6,
    "build peak RSS MB": lambda p: p["build"]["build_peak_rss_mb"],
    "RSS after load MB": lambda p: p["query"]["rss_after_load_mb"],
    **{
        f"{mode} {stat}": (lambda p, m=mode, s=stat: p["query"]["latency"][m][s])
        for mode in (
            "dense",
            "lexical",
            "hybrid",
            "hybrid+source",
            "part:chroma_query",
            "part:bm25_search",
            "part:embed_query",
        )
        for stat in ("p50_ms", "p95_ms")
    },
}


def run(code: Path, size: int, queries: int, out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=str(code))
    started = os.getloadavg()[0]
    subprocess.run(
        [
            sys.executable,
            str(code / "benchmarks" / "scale.py"),
            "--sizes",
            str(size),
            "--no-bundled",
            "--queries",
            str(queries),
            "-o",
            str(out),
        ],
        env=env,
        check=True,
    )
    point = json.loads(out.read_text())["points"][0]
    point["load_average"] = [round(started, 2), round(os.getloadavg()[0], 2)]
    return point


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="git revision of the previous version")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rag-old-") as tmp:
        old = Path(tmp) / "code"
        old.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.old], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
        for i, size in enumerate(args.sizes):
            sides = [("old", old), ("new", ROOT)]
            point = {"size": size}
            for name, code in sides if i % 2 == 0 else sides[::-1]:
                print(f"--- {name} at {size} chunks (load {os.getloadavg()[0]:.2f})", flush=True)
                point[name] = run(code, size, args.queries, Path(tmp) / f"{name}-{size}.json")
            results.append(point)
    print("\n| metric | " + " | ".join(f"{r['size'] // 1000}k old | new | new / old" for r in results) + " |")
    print("|---" * (1 + 3 * len(results)) + "|")
    for metric, get in METRICS.items():
        cells = []
        for r in results:
            try:
                o, n = get(r["old"]), get(r["new"])
            except KeyError:
                o = n = None
            cells += [f"{o:.1f}" if o else "-", f"{n:.1f}" if n else "-", f"{n / o:.2f}" if o and n else "-"]
        print(f"| {metric} | " + " | ".join(cells) + " |")
    print("\n| size | side | load avg start / end |")
    print("|---|---|---|")
    for r in results:
        for side in ("old", "new"):
            print(f"| {r['size']} | {side} | {r[side]['load_average'][0]} / {r[side]['load_average'][1]} |")
    if args.output:
        args.output.write_text(
            json.dumps(
                {
                    "command": " ".join(sys.argv),
                    "old": args.old,
                    "started": time.strftime("%Y-%m-%d %H:%M"),
                    "results": results,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
