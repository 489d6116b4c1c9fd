"""Start-up cost: `rag --help`, the first answer of a new process, and a second answer in the same one.

    python benchmarks/startup.py [MODEL ...] [--runs 5] [--evict] [-o benchmarks/results-startup.json]

MODEL defaults to the default model of models.txt. Uses the index in RAG_HOME and the assembled
models in the models dir (RAG_MODELS_HOME); both must exist already (`rag ingest`, one `rag ask`).

1. `rag --help`: wall time of --runs new processes (median, min, max).
2. `rag ask QUESTION --json` as a new process: process wall time, peak RSS, and the Answer's
   retrieve_s / first_token_s / total_s. With --evict the first run starts with the index, the
   embedding export and the model file dropped from the OS page cache (posix_fadvise DONTNEED on
   those files only: dropping the whole page cache needs privileges and would slow every other
   process on the machine; the Python libraries stay cached). The next runs are "new process,
   warm disk".
3. The library in a new process: `Assistant()`, `load_generator()` (model load, timed on
   its own), then `Assistant.ask` twice (first question of the process vs a second one). With
   --evict this is done once with the files evicted and once warm.

--evict evicts the model file of the models dir: point RAG_MODELS_HOME at a copy of your own if
other people's processes read the same files.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from rag.backends.models import ModelRegistry
from rag.settings import Settings

# Two questions the bundled corpus answers (a refused question would never call the model).
FIRST_QUESTION = "How does SimMIM mask images for pretraining?"
SECOND_QUESTION = "How many parameters does Video-Panda use for visual processing?"
RAG = str(Path(sys.executable).with_name("rag"))


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


# --- page cache -----------------------------------------------------------------------------
def data_files(settings: Settings, model: str) -> list[Path]:
    """What `rag ask` reads besides Python itself: the index, the embedding export, the model file."""
    registry = ModelRegistry(settings)
    entry = registry.get(model)
    if not registry.is_verified(entry):
        raise SystemExit(f"model {model} is not assembled in {registry.dir}; run `rag ask --model {model} ...` once")
    files = [p for p in settings.index_dir.rglob("*") if p.is_file()]
    files += sorted((settings.models_dir / "embeddings").glob("*.onnx"))
    return [*files, registry.target(entry)]


def evict(files: list[Path]) -> None:
    """Drop these files' clean pages from the page cache (pages other processes map stay)."""
    for path in files:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:  # SQLite's -wal/-shm files come and go
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def resident_bytes(files: list[Path]) -> int | None:
    """Bytes of these files in the page cache (util-linux `fincore`), None if it is not there."""
    if shutil.which("fincore") is None:
        return None
    existing = [str(p) for p in files if p.exists()]
    out = subprocess.run(
        ["fincore", "--bytes", "--noheadings", "--output", "RES", *existing], capture_output=True, text=True, check=True
    ).stdout
    return sum(int(line) for line in out.split())


# --- new processes --------------------------------------------------------------------------
def run_process(args: list[str]) -> tuple[float, float, str]:
    """(wall s, peak RSS MB, stdout) of one new process; fails loudly if it fails."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err)
        out = process.stdout.read()
        _, status, usage = os.wait4(process.pid, 0)  # wait4, not wait(): it also returns the child's peak RSS
        wall = time.perf_counter() - t0
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(args)} failed ({process.returncode}): {err.read().decode()[-500:]}")
    return wall, usage.ru_maxrss / 1024, out.decode()


def help_times(runs: int) -> dict:
    walls = [run_process([RAG, "--help"])[0] for _ in range(runs)]
    return {"runs": walls, "median_s": statistics.median(walls), "min_s": min(walls), "max_s": max(walls)}


def ask_process(model: str, question: str) -> dict:
    wall, rss, out = run_process([RAG, "ask", question, "--json", "--model", model])
    answer = json.loads(out)
    return {
        "wall_s": wall,
        "peak_rss_mb": rss,
        **answer["timings"],
        "refused": answer["refused"],
        "prompt_tokens": answer["prompt_tokens"],
        "completion_tokens": answer["completion_tokens"],
        "load_average": load_average(),
    }


def library_step(model: str) -> dict:
    """Runs in a fresh process (that has imported `rag` already): model load, then two answers."""
    from rag import Assistant

    t0 = time.perf_counter()
    assistant = Assistant(Settings(model=model))
    init_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    assistant.load_generator()
    load_model_s = time.perf_counter() - t0
    asks = []
    for question in (FIRST_QUESTION, SECOND_QUESTION):
        t0 = time.perf_counter()
        answer = assistant.ask(question)
        asks.append(
            {
                "wall_s": time.perf_counter() - t0,
                **answer.timings.model_dump(),
                "refused": answer.refused,
                "prompt_tokens": answer.prompt_tokens,
                "completion_tokens": answer.completion_tokens,
            }
        )
    assistant.close()
    return {
        "init_s": init_s,
        "load_model_s": load_model_s,
        "first_ask": asks[0],
        "second_ask": asks[1],
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "load_average": load_average(),
    }


def in_new_process(fn, *args) -> dict:
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(fn, *args).result()


# --- main -----------------------------------------------------------------------------------
def measure_model(settings: Settings, model: str, runs: int, cold: bool) -> dict:
    files = data_files(settings, model)
    result: dict = {"model": model, "data_bytes": sum(p.stat().st_size for p in files if p.exists())}
    if cold:
        evict(data_files(settings, model))
        result["resident_bytes_after_evict"] = resident_bytes(files)
        result["ask_cold_disk"] = ask_process(model, FIRST_QUESTION)
        progress(model, "rag ask, files evicted", result["ask_cold_disk"])
    result["ask_warm_disk"] = []
    for _ in range(max(1, runs - 1)):
        result["ask_warm_disk"].append(ask_process(model, FIRST_QUESTION))
        progress(model, "rag ask, warm disk", result["ask_warm_disk"][-1])
    result["library_warm_disk"] = in_new_process(library_step, model)
    progress(model, "library, warm disk", result["library_warm_disk"])
    if cold:
        evict(data_files(settings, model))
        result["library_cold_disk"] = in_new_process(library_step, model)
        progress(model, "library, files evicted", result["library_cold_disk"])
    return result


def progress(model: str, what: str, record: dict) -> None:
    """One line to stderr per measurement, so a long run shows where it is (and what a crash lost)."""
    print(f"[{model}] {what}: {json.dumps(record)}", file=sys.stderr, flush=True)


def fmt_ask(label: str, a: dict) -> str:
    first = f"{a['first_token_s']:.2f}" if a.get("first_token_s") is not None else "-"
    return (
        f"| {label} | {a.get('wall_s', float('nan')):.2f} | {a['retrieve_s']:.3f} | {first} | {a['total_s']:.2f} | "
        f"{a['prompt_tokens']} | {a['completion_tokens']} |"
    )


def print_tables(result: dict) -> None:
    h = result["help"]
    print(
        f"\n`rag --help`: median {h['median_s']:.2f} s (min {h['min_s']:.2f}, max {h['max_s']:.2f}, {len(h['runs'])} runs)"
    )
    for m in result["models"]:
        print(f"\n{m['model']}: | what | wall s | retrieve_s | first_token_s | total_s | prompt tok | answer tok |")
        print("|---|---|---|---|---|---|---|")
        if "ask_cold_disk" in m:
            print(fmt_ask("`rag ask --json`, new process, files evicted", m["ask_cold_disk"]))
        for a in m["ask_warm_disk"]:
            print(fmt_ask("`rag ask --json`, new process, warm disk", a))
        for key in ("library_cold_disk", "library_warm_disk"):
            if key in m:
                lib = m[key]
                print(
                    f"| library ({key}): Assistant() {lib['init_s']:.2f} s, "
                    f"load_generator {lib['load_model_s']:.2f} s, peak RSS {lib['peak_rss_mb']:.0f} MB | | | | | | |"
                )
                print(fmt_ask(f"Assistant.ask, 1st in process ({key})", lib["first_ask"]))
                print(fmt_ask(f"Assistant.ask, 2nd in process ({key})", lib["second_ask"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="model names from models.txt (default: the default model)")
    parser.add_argument("--runs", type=int, default=5, help="`rag --help` runs; `rag ask` runs per model (incl. cold)")
    parser.add_argument("--evict", action="store_true", help="also measure with the data files out of the page cache")
    parser.add_argument("-o", "--output", type=Path, help="write the results as JSON here")
    args = parser.parse_args()

    settings = Settings()
    models = args.models or [ModelRegistry(settings).default.name]
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    result = {
        "command": "python benchmarks/startup.py "
        + " ".join([*args.models, f"--runs {args.runs}", *(["--evict"] if args.evict else [])]),
        "started": started,
        "cpu_count": os.cpu_count(),
        "load_average_start": load_average(),
        "help": help_times(args.runs),
        "models": [measure_model(settings, m, args.runs, args.evict) for m in models],
        "load_average_end": load_average(),
    }
    print_tables(result)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))
        print(f"\nresults written to {args.output}")


if __name__ == "__main__":
    main()
