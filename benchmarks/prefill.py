"""Raw llama.cpp prompt-evaluation (prefill) speed under different settings: what bounds the first token.

    python benchmarks/prefill.py [--model NAME|PATH] [--tokens 300] [--requant q8_0 q4_0]

Evaluates the same prompt tokens three times per setting (fresh KV cache each time) and reports the
best speed and one-token decode speed. `--requant` also tries the model re-quantized to other
types (written to a temp dir, deleted afterwards) to see whether another weight layout has faster
CPU kernels here.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import tempfile
import time
from pathlib import Path

from rag import Assistant

SETTINGS = [
    {},
    {"flash_attn": True},
    {"n_ubatch": 128},
    {"n_threads": 1, "n_threads_batch": 1},
]


def speed(path: Path, tokens: int, n_threads: int, extra: dict) -> tuple[float, float]:
    from llama_cpp import Llama

    # The assistant's own thread count (llama-cpp-python would decode on half the cores).
    options = {"n_ctx": 2048, "n_batch": 512, "n_threads": n_threads, "verbose": False, **extra}
    llm = Llama(model_path=str(path), **options)
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    prompt = llm.tokenize(text.encode())[:tokens]
    best = float("inf")
    for _ in range(3):
        llm.reset()
        started = time.perf_counter()
        llm.eval(prompt)
        best = min(best, time.perf_counter() - started)
    started = time.perf_counter()
    for token in prompt[:32]:
        llm.eval([token])
    decode = 32 / (time.perf_counter() - started)
    del llm
    return tokens / best, decode


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=300)
    parser.add_argument("--requant", nargs="*", default=[])
    args = parser.parse_args()
    assistant = Assistant()
    resolved = assistant.models.resolve(args.model or assistant.settings.models.model or None)
    threads = assistant.settings.models.n_threads
    print(f"{resolved.name}: {args.tokens} prompt tokens, best of 3\n")
    print("| weights | settings | prefill tok/s | decode tok/s |")
    print("|---|---|---|---|")
    for extra in SETTINGS:
        prefill, decode = speed(resolved.path, args.tokens, threads, extra)
        print(
            f"| as shipped | {json.dumps(extra) if extra else 'defaults'} | {prefill:.1f} | {decode:.1f} |", flush=True
        )
    if args.requant:
        import llama_cpp

        with tempfile.TemporaryDirectory() as tmp:
            for kind in args.requant:
                target = Path(tmp) / f"{kind}.gguf"
                params = llama_cpp.llama_model_quantize_default_params()
                params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{kind.upper()}")
                params.allow_requantize = True
                llama_cpp.llama_model_quantize(str(resolved.path).encode(), str(target).encode(), ctypes.byref(params))
                prefill, decode = speed(target, args.tokens, threads, {})
                print(f"| re-quantized to {kind} | defaults | {prefill:.1f} | {decode:.1f} |", flush=True)
                target.unlink()


if __name__ == "__main__":
    main()
