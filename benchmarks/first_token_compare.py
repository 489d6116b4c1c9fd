"""Time to first token of two versions of the code on the same questions, side by side.

Each question is asked with `python -m rag.cli ask --json` (a new process; the model's load is not in
the answer's timings) by each variant in turn, alternating, against its own copy of an index of the
bundled corpus; the report gives each variant's median and the ratio of medians, with the load.

    python benchmarks/first_token_compare.py ../shared/eval/dev.jsonl --n 12 \\
        --variant old=/path/to/old/checkout:/path/to/old/home --variant new=.:/path/to/new/home -o out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("qa_file", type=Path)
    parser.add_argument("--variant", action="append", required=True, help="NAME=CODE_DIR:RAG_HOME")
    parser.add_argument("--n", type=int, default=12, help="the first N questions without history")
    parser.add_argument("-o", "--output", type=Path)
    args = parser.parse_args()
    items = [json.loads(line) for line in args.qa_file.read_text().splitlines() if line.strip()]
    questions = [i["question"] for i in items if not i.get("history")][: args.n]
    variants = [(spec.split("=", 1)[0], *spec.split("=", 1)[1].split(":")) for spec in args.variant]
    rows: dict[str, list[dict]] = {name: [] for name, _, _ in variants}
    for question in questions:
        for name, code, home in variants:
            env = dict(os.environ, PYTHONPATH=str(Path(code).resolve()), RAG_HOME=home, HF_HUB_OFFLINE="1")
            load = os.getloadavg()[0]
            out = subprocess.run(
                [sys.executable, "-m", "rag.cli", "ask", "--json", question],
                env=env,
                cwd=Path(code).resolve(),  # `python -m` puts the working dir first on sys.path
                capture_output=True,
                text=True,
                check=True,
            )
            data = json.loads(out.stdout)
            row = {
                "question": question,
                "first_token_s": data["timings"]["first_token_s"],
                "total_s": data["timings"]["total_s"],
                "prompt_tokens": data.get("prompt_tokens"),
                "refused": data["refused"],
                "load": round(load, 2),
            }
            rows[name].append(row)
            print(name, row, flush=True)
    summary = {}
    for name, got in rows.items():
        firsts = [r["first_token_s"] for r in got if r["first_token_s"] is not None]
        summary[name] = {
            "median_first_token_s": statistics.median(firsts) if firsts else None,
            "median_prompt_tokens": statistics.median(r["prompt_tokens"] for r in got if r["prompt_tokens"]),
        }
    base = variants[0][0]
    for name in summary:
        if summary[base]["median_first_token_s"] and summary[name]["median_first_token_s"]:
            summary[name]["ratio_to_" + base] = round(
                summary[name]["median_first_token_s"] / summary[base]["median_first_token_s"], 2
            )
    print(json.dumps(summary, indent=1))
    if args.output:
        args.output.write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
