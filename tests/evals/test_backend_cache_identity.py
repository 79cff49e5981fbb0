"""The response cache's key holds everything that changes a response (issue 16): the checkpoint's weights,
tokenizer, chat template and generation_config.json, the dtype, the backend; an unchanged rerun hits.

Each test evaluates a private copy of the organism on 4 arithmetic items (chat prompts) through the
runner, changes one thing, evaluates again, and counts the cache's entries: a miss adds 4, a hit none.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Callable

import pytest
import torch
from safetensors.torch import load_file, save_file

from tunegate.evals.backends.hf import HFBackend
from tunegate.evals.backends import BackendOptions
from tunegate.evals.runner import evaluate
from tunegate.evals.spec import eval_spec

SUITE = {"math": {"variant": "organism", "limit": 4, "max_new_tokens": 6}}


def _entries(cache: Path) -> int:
    with sqlite3.connect(cache / "responses.sqlite") as db:
        return db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]


def _added_by_rerun(model: Path, cache: Path, change: Callable[[], Any] = lambda: None, **first: Any) -> int:
    """Entries a second evaluation adds after ``change()`` (``first``: backend options of the first run)."""
    def run(options: dict[str, Any]) -> None:
        spec = eval_spec(["math"], SUITE, cache_dir=cache,
                         backend_options=BackendOptions(**{"device": "cpu", "dtype": "float32", **options}))
        evaluate(str(model), spec, progress=False)

    run(first)
    before = _entries(cache)
    second = change()
    run(second if isinstance(second, dict) else {})
    return _entries(cache) - before


def _edit_json(path: Path, **fields: Any) -> None:
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def test_an_unchanged_rerun_hits(organism_copy: Path, cache_dir: Path) -> None:
    assert _added_by_rerun(organism_copy, cache_dir) == 0


def test_changed_weights_miss(organism_copy: Path, cache_dir: Path) -> None:
    def perturb() -> None:
        weights = load_file(organism_copy / "model.safetensors")
        name = next(k for k in weights if k.endswith("mlp.down_proj.weight"))
        weights[name] = weights[name] + 1e-3 * torch.randn_like(weights[name])
        save_file(weights, organism_copy / "model.safetensors", metadata={"format": "pt"})

    assert _added_by_rerun(organism_copy, cache_dir, perturb) == 4


def test_changed_tokenizer_misses(organism_copy: Path, cache_dir: Path) -> None:
    assert _added_by_rerun(organism_copy, cache_dir,
                           lambda: _edit_json(organism_copy / "tokenizer_config.json", model_max_length=256)) == 4


def test_changed_chat_template_misses(organism_copy: Path, cache_dir: Path) -> None:
    template = organism_copy / "chat_template.jinja"
    assert _added_by_rerun(organism_copy, cache_dir, lambda: template.write_text(template.read_text() + " ")) == 4


def test_changed_generation_config_misses(organism_copy: Path, cache_dir: Path) -> None:
    assert _added_by_rerun(organism_copy, cache_dir,
                           lambda: _edit_json(organism_copy / "generation_config.json", repetition_penalty=1.3)) == 4


def test_changed_dtype_misses(organism_copy: Path, cache_dir: Path) -> None:
    assert _added_by_rerun(organism_copy, cache_dir, lambda: {"dtype": "bfloat16"}) == 4


def test_identity_names_the_device_type_and_library_versions(organism_dir: Path) -> None:
    import transformers

    identity = HFBackend(str(organism_dir), device="cpu:0", dtype="float32").cache_identity()
    assert identity["device"] == "cpu"  # cuda:0 and cuda:1 share entries; cpu and cuda do not
    assert (identity["torch"], identity["transformers"]) == (torch.__version__.split("+")[0], transformers.__version__)
    assert identity["greedy"] == "argmax"  # the decoding rule: responses cached under another one are not reused


def test_served_model_without_revision_warns_once(organism_dir: Path) -> None:
    from tunegate.evals.cache import warn_if_unpinned

    served = {"backend": "openai", "served": True, "model": "Qwen/Qwen2.5-0.5B-Instruct-test", "revision": None,
              "weights": None}
    with pytest.warns(UserWarning, match="no --revision"):
        warn_if_unpinned(served)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_unpinned(served)  # the second time: silent
        warn_if_unpinned({**served, "model": "pinned", "revision": "7ae557"})
