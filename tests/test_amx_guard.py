"""llama.cpp's AMX weight buffers crash the first decode of K-quant models on some CPUs: `amx_guard`
loads models without llama.cpp's extra buffers on builds that have AMX, and only there."""

from __future__ import annotations

import llama_cpp
import pytest
from llama_cpp import llama as llama_module

from rag.backends.llm import amx_guard


@pytest.mark.parametrize(
    ("system_info", "extra_buffers"), [(b"AVX2 = 1 | AMX_INT8 = 1 |", False), (b"AVX2 = 1 |", True)]
)
def test_models_load_without_extra_weight_buffers_only_where_amx_is_built_in(monkeypatch, system_info, extra_buffers):
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: system_info)
    original = llama_module.llama_cpp.llama_model_default_params
    with amx_guard():
        assert llama_module.llama_cpp.llama_model_default_params().use_extra_bufts is extra_buffers
    assert llama_module.llama_cpp.llama_model_default_params is original
    assert original().use_extra_bufts is True


def test_the_guard_is_undone_when_loading_fails(monkeypatch):
    monkeypatch.setattr(llama_cpp, "llama_print_system_info", lambda: b"AMX_INT8 = 1")
    original = llama_module.llama_cpp.llama_model_default_params
    with pytest.raises(RuntimeError), amx_guard():
        raise RuntimeError("the model did not load")
    assert llama_module.llama_cpp.llama_model_default_params is original
