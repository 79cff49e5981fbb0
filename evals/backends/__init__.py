"""The backend registry: what answers the runner's batched requests, chosen in one place (``load_backend``).

    hf      transformers in this process (``tunegate.evals.backends.hf.HFBackend``)
    vllm    vLLM's offline engine in this process, on CUDA GPUs (``...backends.vllm.VLLMBackend``)
    openai  any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, ``transformers serve``
            (``...backends.openai.OpenAIBackend``)

A new backend is one module here implementing ``tunegate.evals.requests.Backend`` plus one line in
``BACKENDS`` (and its options below); it is imported only when chosen, so vLLM loads only for ``vllm``::

    backend = load_backend("organism")                 # HFBackend on the shipped organism
    backend = load_backend("Qwen/Qwen2.5-0.5B-Instruct", backend="vllm", tensor_parallel_size=2)
    backend = load_backend("organism", backend="openai", base_url="http://127.0.0.1:8000/v1")

The command line (``tunegate eval``, ``tunegate run``), the pytest plugin (``--gate-backend`` ...) and
the pipeline config (``eval.backend``, ``eval.backend_options``) all take the fields of
``BackendOptions``; ``backend_kwargs`` checks that each one given belongs to the chosen backend.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from tunegate.core.errors import TunegateError
from tunegate.core.registry import Registry
from tunegate.evals.requests import Backend

BACKENDS: Registry[Any] = Registry("backend", {
    "hf": "tunegate.evals.backends.hf:HFBackend",
    "vllm": "tunegate.evals.backends.vllm:VLLMBackend",
    "openai": "tunegate.evals.backends.openai:OpenAIBackend",
})
DEFAULT_BACKEND = "hf"


BUILTIN = ("hf", "vllm", "openai")


def _opt(default: Any, backends: tuple[str, ...], help: str, flag: bool = True) -> Any:
    return field(default=default, metadata={"help": help, "backends": backends, "flag": flag})


@dataclass(frozen=True)
class BackendOptions:
    """Options of the evaluation backends; ``metadata["backends"]`` names the backends that take each one."""

    device: str | None = _opt(None, ("hf",), "cpu, cuda, cuda:1 (default: cuda when available)")
    dtype: str | None = _opt(None, ("hf", "vllm"), "bfloat16, float16 or float32 (default: bf16 on CUDA, fp32 on CPU; "
                                                    "vllm: the checkpoint's)")
    batch_size: int | None = _opt(None, ("hf",), "generation batch size (default: from free GPU memory, 32 on CPU)")
    tensor_parallel_size: int | None = _opt(None, ("vllm",), "GPUs each vLLM replica's weights are split across")
    data_parallel_size: int | None = _opt(None, ("vllm",), "vLLM replicas, each on its own tensor_parallel_size GPUs; "
                                                           "the requests are split across them")
    gpu_memory_utilization: float | None = _opt(None, ("vllm",), "share of each GPU's memory vLLM may take (default 0.9)")
    base_url: str | None = _opt(None, ("openai",), "the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1 "
                                                   "(default: $OPENAI_BASE_URL)")
    api_key_env: str | None = _opt(None, ("openai",), "environment variable holding the API key (default: "
                                                      "OPENAI_API_KEY when set); the key itself is never an argument")
    served_model: str | None = _opt(None, ("openai",), "model id the server knows the model by (default: the model "
                                                       "argument; its absolute path for a local checkpoint)")
    revision: str | None = _opt(None, ("openai",), "revision (commit, tag) of the served weights: part of the "
                                                   "fingerprint and the cache key of a model served by name")
    endpoint: str | None = _opt(None, ("openai",), "chat (the server applies its chat template; default) or "
                                                   "completions (the chat template is applied here)")
    concurrency: int | None = _opt(None, ("openai",), "requests in flight at once (default 8)")
    timeout: float | None = _opt(None, ("openai",), "seconds one request may take before it is retried (default 120)")
    max_retries: int | None = _opt(None, ("openai",), "retries of a request on 429, 5xx, a timeout or a dropped "
                                                      "connection, with exponential backoff (default 4)")
    completion_mode: bool | None = _opt(None, BUILTIN, "send raw prompts (no chat template)", flag=False)
    chat_template_kwargs: dict | None = _opt(None, ("hf", "vllm"), "extra variables of the chat template, e.g. "
                                             "{enable_thinking: false} for Qwen3 (kept in the record)", flag=False)
    chat_template: str | None = _opt(None, ("hf",), "a Jinja chat template file for a checkpoint that has none (a base "
                                     "model asked the way its SFT will teach it); its hash joins the cache identity",
                                     flag=False)
    threads: int | None = _opt(None, ("hf",), "torch intra-op threads (default: torch's, or 1 for a small "
                                              "model on the CPU)", flag=False)


BACKEND_OPTION_FIELDS = tuple(dataclasses.fields(BackendOptions))
#: The options that are command-line flags (``--base-url``; the plugin's ``--gate-base-url``).
BACKEND_FLAGS = tuple(f for f in BACKEND_OPTION_FIELDS if f.metadata["flag"])


def option_type(f: dataclasses.Field) -> type:
    """The Python type a flag's text converts to: ``int | None`` -> int, ``str | None`` -> str."""
    return {"int | None": int, "float | None": float}.get(str(f.type), str)


def backend_kwargs(backend: str, options: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """The options given (not None) for ``backend``; one that belongs to other backends is one clear error.

    ``where`` prefixes the message (a config file and field); the command line names flags instead.
    """
    if backend not in BACKENDS:
        raise TunegateError(f"{where + ': ' if where else ''}unknown backend '{backend}' "
                            f"(known: {', '.join(BACKENDS.names())})")
    known = {f.name: f for f in BACKEND_OPTION_FIELDS}
    out: dict[str, Any] = {}
    for name, value in options.items():
        if value is None:
            continue
        f = known.get(name)
        if f is None and backend not in BUILTIN:  # a backend registered from outside takes its own options
            out[name] = value
            continue
        if f is None:
            raise TunegateError(f"{where or 'backend options'}: unknown option '{name}' "
                                f"(known: {', '.join(sorted(known))})")
        takes = f.metadata["backends"]
        if backend in BUILTIN and backend not in takes:
            flag = f"--{name.replace('_', '-')}"
            raise TunegateError(f"{where + ': ' if where else ''}option '{name}' ({flag}) is for backend "
                                f"{' or '.join(takes)}, not '{backend}'")
        out[name] = value
    return out


def load_backend(model: str, backend: str = DEFAULT_BACKEND, **options: Any) -> Backend:
    """Load ``model`` (hub id, local path, ``organism``, or a served model's id) behind ``backend``."""
    return BACKENDS.get(backend)(model, **backend_kwargs(backend, options))
