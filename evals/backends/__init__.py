"""The backend registry and the backends' options: what answers the runner's batched requests, chosen in one place.

    hf      transformers in this process (``tunegate.evals.backends.hf.HFBackend``)
    vllm    vLLM's offline engine in this process, on CUDA GPUs (``...backends.vllm.VLLMBackend``)
    openai  any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, ``transformers serve``
            (``...backends.openai.OpenAIBackend``)

A new backend is one module here implementing ``tunegate.evals.requests.Backend`` plus one line in
``BACKENDS`` (and its options below, each naming the backends that take it); it is imported only when
chosen, so vLLM loads only for ``vllm``::

    backend = load_backend("organism")                 # HFBackend on the shipped organism
    backend = load_backend("Qwen/Qwen2.5-0.5B-Instruct", "vllm", BackendOptions(tensor_parallel_size=2))
    backend = load_backend("organism", "openai", BackendOptions(base_url="http://127.0.0.1:8000/v1"))

``BackendOptions`` is declared once: the command line's flags (``--batch-size``, ``--base-url`` ...), the
pytest plugin's (``--gate-batch-size`` ...) and the pipeline config's ``eval.backend_options`` are its
fields, and an ``EvalSpec`` carries it whole to ``load_backend``. An option given to a backend that does
not take it is one error naming the flag::

    check_backend("hf", BackendOptions(base_url="http://h/v1"))
    # TunegateError: option 'base_url' (--base-url) is for backend openai, not 'hf'
"""

from __future__ import annotations

import dataclasses
import json
import typing
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


def _opt(backends: tuple[str, ...], help: str, minimum: float | None = None) -> Any:
    return field(default=None, metadata={"help": help, "backends": backends, "minimum": minimum})


@dataclass(frozen=True)
class BackendOptions:
    """Options of the evaluation backends (None: the backend's default); ``metadata["backends"]`` names the
    backends that take each one."""

    device: str | None = _opt(("hf",), "cpu, cuda, cuda:1 (default: cuda when available)")
    dtype: str | None = _opt(("hf", "vllm"), "bfloat16, float16 or float32 (default: bf16 on CUDA, fp32 on CPU; "
                                             "vllm: the checkpoint's)")
    batch_size: int | None = _opt(("hf",), "generation batch size (default: from free GPU memory, 32 on CPU)",
                                  minimum=1)
    threads: int | None = _opt(("hf",), "torch intra-op threads (default: torch's, or 1 for a small model on the "
                                        "CPU)", minimum=1)
    completion_mode: bool | None = _opt(BUILTIN, "send raw prompts (no chat template)")
    chat_template_kwargs: dict[str, Any] | None = _opt(("hf", "vllm"), "extra variables of the chat template as "
                                                                      "JSON, e.g. {\"enable_thinking\": false} for "
                                                                      "Qwen3 (kept in the record)")
    chat_template: str | None = _opt(("hf",), "a Jinja chat template file for a checkpoint that has none (a base model "
                                              "asked the way its SFT will teach it); its hash joins the cache identity "
                                              "and the record")
    tensor_parallel_size: int | None = _opt(("vllm",), "GPUs each vLLM replica's weights are split across",
                                            minimum=1)
    data_parallel_size: int | None = _opt(("vllm",), "vLLM replicas, each on its own tensor_parallel_size GPUs; "
                                                     "the requests are split across them", minimum=1)
    gpu_memory_utilization: float | None = _opt(("vllm",), "share of each GPU's memory vLLM may take (default 0.9)")
    base_url: str | None = _opt(("openai",), "the server's OpenAI API root, e.g. http://127.0.0.1:8000/v1 "
                                             "(default: $OPENAI_BASE_URL)")
    api_key_env: str | None = _opt(("openai",), "environment variable holding the API key (default: "
                                                "OPENAI_API_KEY when set); the key itself is never an argument")
    served_model: str | None = _opt(("openai",), "model id the server knows the model by (default: the model "
                                                 "argument; its absolute path for a local checkpoint)")
    revision: str | None = _opt(("openai",), "revision (commit, tag) of the served weights: part of the "
                                             "fingerprint and the cache key of a model served by name")
    endpoint: str | None = _opt(("openai",), "chat (the server applies its chat template; default) or "
                                             "completions (the chat template is applied here)")
    concurrency: int | None = _opt(("openai",), "requests in flight at once (default 8)", minimum=1)
    timeout: float | None = _opt(("openai",), "seconds one request may take before it is retried (default 120)")
    max_retries: int | None = _opt(("openai",), "retries of a request on 429, 5xx, a timeout or a dropped "
                                                "connection, with exponential backoff (default 4)", minimum=0)
    trust_remote_code: bool | None = _opt(BUILTIN, "run the Python code a checkpoint ships (config.json auto_map); "
                                                   "off unless given, and kept in the record")

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a count below its minimum (--batch-size 0) is a usage error
            value, low = getattr(self, f.name), f.metadata["minimum"]
            if low is not None and isinstance(value, (int, float)) and not isinstance(value, bool) and value < low:
                raise TunegateError(f"option '{f.name}' ({flag(f.name)}) must be at least {low}, got {value}")

    def given(self) -> dict[str, Any]:
        """The options set (not None), by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}

    def updated(self, **changes: Any) -> "BackendOptions":
        """These options with ``changes`` over them (None in ``changes`` keeps the current value)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def flag(name: str) -> str:
    """The command-line flag of an option: ``base_url`` -> ``--base-url``."""
    return f"--{name.replace('_', '-')}"


def check_backend(backend: str, options: BackendOptions) -> None:
    """``backend`` is registered and takes every option given; otherwise one error naming the option's flag."""
    if backend not in BACKENDS:
        raise TunegateError(f"unknown backend '{backend}' (known: {', '.join(BACKENDS.names())})")
    if backend not in BUILTIN:  # a backend registered from outside takes what it is given
        return
    for f in dataclasses.fields(options):
        takes = f.metadata["backends"]
        if getattr(options, f.name) is not None and backend not in takes:
            raise TunegateError(f"option '{f.name}' ({flag(f.name)}) is for backend {' or '.join(takes)}, "
                                f"not '{backend}'")


def backend_flags() -> list[tuple[str, dict[str, Any]]]:
    """``(flag, keyword arguments)`` of one command-line option per field, for argparse's ``add_argument`` and
    pytest's ``addoption`` alike (both take ``dest``, ``type``/``action``, ``default`` and ``help``)."""
    out, hints = [], typing.get_type_hints(BackendOptions)
    for f in dataclasses.fields(BackendOptions):
        kind = next(a for a in typing.get_args(hints[f.name]) if a is not type(None))  # X of ``X | None``
        how: dict[str, Any] = {"action": "store_true"} if kind is bool else \
            {"type": _json_mapping if typing.get_origin(kind) is dict else kind}
        out.append((flag(f.name), {"dest": f.name, "default": None, **how,
                                   "help": f"[{', '.join(f.metadata['backends'])}] {f.metadata['help']}"}))
    return out


def _json_mapping(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"expected a JSON object, got {text!r}")
    return value


def options_from(values: Mapping[str, Any]) -> BackendOptions:
    """``BackendOptions`` from flag values by field name (an argparse namespace's ``vars``); absent or None is unset."""
    return BackendOptions(**{f.name: values[f.name] for f in dataclasses.fields(BackendOptions)
                             if values.get(f.name) is not None})


def load_backend(model: str, backend: str = DEFAULT_BACKEND, options: BackendOptions | None = None) -> Backend:
    """Load ``model`` (hub id, local path, ``organism``, or a served model's id) behind ``backend``."""
    options = options or BackendOptions()
    check_backend(backend, options)
    return BACKENDS.get(backend)(model, **options.given())
