"""`python -m rag.backends.llama_server ARGS...`: llama-cpp-python's OpenAI-compatible server (`python -m
llama_cpp.server`, the same arguments), loading its model the way `rag` does: without the AMX weight
buffers that crash llama.cpp on some CPUs (see `rag.backends.llm.amx_guard`)."""

from __future__ import annotations

import runpy

from rag.backends.llm import amx_guard


def main() -> None:
    with amx_guard():
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
