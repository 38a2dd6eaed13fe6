"""``python -m workbench.llm.server_main ARGS``: ``python -m llama_cpp.server ARGS`` with llama.cpp's
extra buffer types (AMX, CPU weight repacking) off while the model loads, as the in-process backend
loads it (:func:`workbench.llm.llamacpp.extra_buffer_types`): on CPUs that report AMX,
llama-cpp-python 0.3.36 dies in ``ggml_backend_amx_mul_mat`` on the first prompt of more than one
token. Set ``WORKBENCH_LLAMA_REPACK=1`` to load with them on (faster where AMX works)."""

from __future__ import annotations

import os
import runpy

from workbench.llm.llamacpp import extra_buffer_types

if __name__ == "__main__":
    with extra_buffer_types(os.environ.get("WORKBENCH_LLAMA_REPACK") == "1"):
        runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
