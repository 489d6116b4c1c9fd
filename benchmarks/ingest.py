"""Ingest speed: the bundled corpus from scratch vs the embedder alone on the same chunk texts,
and re-ingest of the unchanged corpus in a new process (what a user waits for).

    python benchmarks/ingest.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag import Assistant, Settings


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        assistant = Assistant(Settings(home=home))
        assistant.embedder.encode_query("load the model first")  # model load is not ingest work
        t0 = time.perf_counter()
        report = assistant.ingest()
        ingest_s = time.perf_counter() - t0
        rows = assistant.index.catalog.iter_chunks()
        texts = [f"{title}. {text}" for _, title, text in rows]
        t0 = time.perf_counter()
        assistant.embedder.encode(texts)
        encode_s = time.perf_counter() - t0
        assistant.close()
        print(f"embedding engine: {assistant.embedder.engine}, {os.cpu_count()} threads")
        print(f"ingest from scratch: {report.unique_papers} papers, {len(texts)} chunks in {ingest_s:.1f} s")
        print(f"embedder alone on the same {len(texts)} chunk texts: {encode_s:.1f} s")
        print(f"ratio ingest / embedder alone: {ingest_s / encode_s:.2f}")
        env = dict(os.environ, RAG_HOME=str(home))
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "rag.cli", "ingest"], env=env, check=True, capture_output=True)
        print(f"re-ingest of the unchanged corpus (`rag ingest`, new process): {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
