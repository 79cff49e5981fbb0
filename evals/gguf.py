"""GGUF checkpoints (what llama.cpp and Ollama users hold) as plain transformers folders, converted once.

A ``.gguf`` file is accepted wherever a model is: the first use reads it with transformers' GGUF loader
(the ``gguf`` package; the weights dequantized to float32, the tokenizer converted) and saves a plain HF
folder in the model cache, keyed by the file's sha256; every later use loads that folder in seconds::

    gguf_model_dir(Path("SmolLM2-135M-Instruct.Q4_1.gguf"))
    # ~/.cache/tunegate/models/gguf/b179c9523d0e6a0f/: config.json, generation_config.json, model.safetensors,
    #   tokenizer.json, tokenizer_config.json, chat_template.jinja (when the GGUF has one), gguf_source.json

``gguf_source.json`` names the file it came from: ``{"file": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256":
"b179c952...", "bytes": 98362432, "model_type": "llama", "chat_template": true, "transformers": "5.25.0"}``.
The GGUF's sha256 is also the folder's fingerprint (``fingerprint_dir``), so a record names the model by the
file the user holds. An architecture transformers cannot read is one error line.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunegate.core import progress
from tunegate.core.errors import TunegateError
from tunegate.core.files import read_json, sha256_file, write_json_atomic

#: The file a converted folder carries: where it came from (and, being written last, that it is complete).
SOURCE_FILE = "gguf_source.json"
SUFFIX = ".gguf"


def model_cache_dir() -> Path:
    """Where fetched and converted models live: ``$TUNEGATE_MODEL_CACHE``, else ``$TUNEGATE_CACHE/models``
    (default ``~/.cache/tunegate/models``)."""
    explicit = os.environ.get("TUNEGATE_MODEL_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    from tunegate.evals.cache import default_cache_dir

    return default_cache_dir().expanduser() / "models"


def is_gguf(model: str | Path) -> bool:
    """True when ``model`` names a GGUF file (by its suffix; the file need not exist yet)."""
    return str(model).lower().endswith(SUFFIX)


def gguf_source(folder: Path) -> dict[str, Any] | None:
    """The ``gguf_source.json`` of a converted folder, or None for any other checkpoint."""
    path = folder / SOURCE_FILE
    return read_json(path) if path.is_file() else None


def gguf_model_dir(path: str | Path) -> Path:
    """The converted HF folder of the GGUF file ``path``, converting it on first use (a progress line)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise TunegateError(f"model '{path}': GGUF file not found")
    digest = sha256_file(path)
    dest = model_cache_dir() / "gguf" / digest[:16]
    if (dest / SOURCE_FILE).is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{digest[:16]}-", dir=dest.parent))
    try:
        size = path.stat().st_size
        progress.log(f"{path.name}: {size / 2**20:.0f} MB GGUF, converted once to a transformers checkpoint in the "
                     f"model cache (about 30 s per 100M parameters; later uses load it in seconds)")
        with progress.phase(f"convert {path.name}"):
            info = convert(path, work)
        write_json_atomic(work / SOURCE_FILE, {"file": path.name, "sha256": digest, "bytes": size, **info})
        try:
            work.rename(dest)  # atomic: a reader sees no folder or a complete one
        except OSError:  # another process converted the same file meanwhile: keep theirs
            if not (dest / SOURCE_FILE).is_file():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    progress.log(f"converted {path.name} -> {dest}")
    return dest


def convert(path: Path, out: Path) -> dict[str, Any]:
    """Read ``path`` with transformers' GGUF loader and save a plain float32 checkpoint in ``out``.

    A model loaded from GGUF keeps ``config.quantization_config`` and refuses ``save_pretrained``; the
    weights (already dequantized) go into a model rebuilt from the config without it.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    where = f"model '{path}'"
    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        loaded = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
    except (ValueError, KeyError, OSError) as exc:  # the loader's "GGUF model with architecture X is not
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__  # supported yet.", a bad magic, ...
        if "not supported" in first:
            raise TunegateError(f"{where}: transformers {transformers.__version__}'s GGUF loader cannot read this "
                                f"checkpoint ({first})") from None
        raise TunegateError(f"{where}: not a GGUF checkpoint transformers can read ({first})") from None
    config = loaded.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return {"model_type": config.model_type,
            "parameters": sum(p.numel() for p in model.parameters()),
            "chat_template": bool(getattr(tokenizer, "chat_template", None)), "transformers": transformers.__version__}

