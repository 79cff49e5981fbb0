"""Where a model lives and what it is: a local directory for every model argument, and its content hash.

Every model argument takes a hub id, a local checkpoint directory (a PEFT adapter directory too), a
GGUF file (converted once into the model cache, evals.gguf), or a provider's model (``organism``, and the
real models ``tunegate models fetch`` brings: ``smollm2-135m-instruct``, ``gemma-3-270m``)::

    resolve_model_dir("organism")                      # .../tunegate/organism/base
    resolve_model_dir("runs/demo/stages/sft/model")    # the directory itself
    resolve_model_dir("SmolLM2-135M-Instruct.Q4_1.gguf")  # ~/.cache/tunegate/models/gguf/b179c9523d0e6a0f
    resolve_model_dir("Qwen/Qwen2.5-0.5B-Instruct")    # the HF cache snapshot (downloaded when online)
    fingerprint_dir(path)                              # "3f2a9c1b0d4e5f67": weights, tokenizer, template, generation config
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
from pathlib import Path
from typing import Iterator

from tunegate.core.errors import TunegateError
from tunegate.core.files import hash_file
from tunegate.evals.gguf import gguf_model_dir, gguf_source, is_gguf
from tunegate.evals.providers import provided_model

#: Files whose bytes define a model for the fingerprint (weights or adapter, tokenizer, template, and
#: generation_config.json: ``generate`` reads its defaults, e.g. repetition_penalty or eos ids, so two
#: checkpoints that differ only there answer differently and must not share a fingerprint or cache entry).
FINGERPRINT_FILES = (
    "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model",
    "adapter_config.json", "generation_config.json",  # its eos ids end the generations
)
WEIGHT_SUFFIXES = (".safetensors", ".bin")
#: Also hashed: the Python code a checkpoint may ship (``auto_map``), which defines the model when trusted.
CODE_SUFFIXES = (".py",)


def local_model_dir(model: str) -> Path | None:
    """The directory of ``model`` when it is a provider's model, a local directory or a GGUF file (its
    converted folder); None otherwise (a hub id, or a model a server knows by name). Never touches the network."""
    provided = provided_model(model)
    if provided is not None:
        return Path(provided)
    p = Path(model).expanduser()
    if is_gguf(model) and p.is_file():
        return gguf_model_dir(p)
    return p if p.is_dir() else None


def resolve_model_dir(model: str) -> Path:
    """A local directory for ``model``: the path itself, a provider's model, or the HF cache snapshot of a hub id.

    A provider's name wins over a folder of that name in the working directory (write ``./organism``
    for the folder). Raises one clear TunegateError when the path does not exist or, offline, the hub
    id is not cached.
    """
    local = local_model_dir(model)
    if local is not None:
        return local
    p = Path(model).expanduser()
    looks_like_path = model.startswith((".", "/", "~")) or model.count("/") > 1
    if looks_like_path or p.exists() or is_gguf(model):
        raise TunegateError(f"model path '{model}' does not exist (or is not a checkpoint directory or GGUF file)")
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}
    try:
        return Path(snapshot_download(model, local_files_only=offline,
                                      allow_patterns=["*.json", "*.safetensors", "*.jinja", "*.txt", "*.model"]))
    except Exception as exc:  # noqa: BLE001 - hub errors come in many types
        how = (f"run `huggingface-cli download {model}` on a machine with network, "
               f"or pass a local checkpoint directory") if offline else str(exc).splitlines()[0]
        raise TunegateError(f"model '{model}': not found locally{' and not in the HF cache (HF_HUB_OFFLINE=1)' if offline else ''}; {how}") from None


def fingerprint_dir(path: Path) -> str:
    """sha256 over the weights (or adapter), tokenizer files, chat template and generation config of a checkpoint.

    A folder converted from a GGUF file is named by that file: its fingerprint is the GGUF's sha256 (as
    ``sha256sum`` prints it, first 16 hex digits), with no pass over the float32 weights."""
    source = gguf_source(path)
    if source is not None:
        return str(source["sha256"])[:16]
    h = hashlib.sha256()
    files = sorted(f for f in path.iterdir() if f.is_file()
                   and (f.name in FINGERPRINT_FILES or f.suffix in WEIGHT_SUFFIXES + CODE_SUFFIXES))
    if not any(f.suffix in WEIGHT_SUFFIXES for f in files):
        raise TunegateError(f"model directory '{path}': no weights found (*.safetensors or *.bin)")
    for f in files:
        h.update(f.name.encode())
        hash_file(h, f)
    return h.hexdigest()[:16]


#: What to say when a checkpoint needs its own code and the user did not allow it.
REMOTE_CODE_REFUSED = ("ships its own Python code (config.json auto_map), which tunegate runs only when asked: "
                       "give --trust-remote-code (a pipeline config: trust_remote_code: true) if you trust its source")


@contextlib.contextmanager
def loading(model: str) -> Iterator[None]:
    """Load a checkpoint (tokenizer, weights) inside this: what is wrong with it is one TunegateError (exit 2).

    A truncated safetensors file, pickled weights that hold code (blocked by torch's ``weights_only``),
    custom code without ``trust_remote_code``, a missing or unreadable file::

        with loading("./ckpt"):
            AutoModelForCausalLM.from_pretrained("./ckpt", trust_remote_code=False)
        # TunegateError: model './ckpt': refused its pickled weights (pytorch_model.bin): ...
    """
    try:
        yield
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        raise TunegateError(f"model '{model}': {_load_problem(exc)}") from None
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise TunegateError(f"model '{model}': cannot read its safetensors weights ({exc}): the file is truncated "
                            f"or corrupt; download or save it again") from None


def _load_problem(exc: BaseException) -> str:
    text = str(exc).strip()
    if "trust_remote_code" in text:
        return REMOTE_CODE_REFUSED
    if isinstance(exc, pickle.UnpicklingError):
        lines = text.splitlines()
        blocked = next((line.strip() for line in lines if "GLOBAL" in line), lines[0] if lines else "")
        return (f"refused its pickled weights (*.bin): they hold code, not only tensors, and torch's weights_only "
                f"load blocked it ({blocked}); use a safetensors copy from a source you trust")
    return f"cannot load checkpoint ({(text.splitlines() or [type(exc).__name__])[0]})"
