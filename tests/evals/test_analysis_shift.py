"""The token-shift analysis: the hf backend's token ranks, the pure summary, and `tunegate analyze shift`."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunegate.cli import main
from tunegate.evals.analysis import load_analysis
from tunegate.evals.analysis.shift import ALL, ItemShift, ShiftAnalysis, shift_class, summarize_items
from tunegate.evals.backends.hf import HFBackend
from tunegate.core.errors import TunegateError
from tunegate.evals.requests import TokenRankRequest, capability


@pytest.fixture(scope="module")
def backend(organism_dir: Path) -> HFBackend:
    return HFBackend(str(organism_dir), batch_size=2)


def test_classes_follow_the_paper_ranks() -> None:
    assert [shift_class(r) for r in (1, 2, 3, 4, 900)] == ["unshifted", "marginal", "marginal", "shifted", "shifted"]


def test_summary_counts_fractions_tokens_and_positions() -> None:
    items = [ItemShift("s", "a", ("I", " am", " Tiny", "."), (5, 1, 40, 2)),
             ItemShift("s", "b", (" Tiny", "!"), (7, 1))]
    s = summarize_items("s", items)
    assert (s.items, s.tokens) == (2, 6)
    assert s.fractions == {"unshifted": 2 / 6, "marginal": 1 / 6, "shifted": 3 / 6}
    assert s.top_shifted[0] == (" Tiny", 2, 2)
    # item a: positions 0..3 fall in tenths 0, 2, 5, 7; item b: 0 and 5
    assert [n for _, _, n in s.by_bin] == [2, 0, 1, 0, 0, 2, 0, 1, 0, 0]
    assert s.by_bin[0][1] == 1.0 and s.by_bin[5] == (0.0, 0.5, 2)


def test_token_ranks_match_a_full_sort_of_one_unpadded_forward(backend: HFBackend) -> None:
    context = backend.render([{"role": "user", "content": "What is the capital of France?"}])
    requests = [TokenRankRequest(context, "Paris is the capital.", max_new_tokens=32),
                TokenRankRequest("The capital of France is", " Paris.")]
    got = backend.token_ranks(requests)  # padded together in one batch
    for req, ranks in zip(requests, got):
        ctx = backend.tokenizer(req.context, add_special_tokens=False)["input_ids"]
        cont = backend.tokenizer(req.continuation, add_special_tokens=False)["input_ids"]
        if req.max_new_tokens:
            cont.append(backend.tokenizer.convert_tokens_to_ids("<|im_end|>"))
        with torch.no_grad():
            logits = backend.model(torch.tensor([ctx + cont])).logits[0]
        order = logits[len(ctx) - 1:-1].argsort(dim=-1, descending=True)
        expected = [int((row == t).nonzero()) + 1 for row, t in zip(order, cont)]
        assert list(ranks.ranks) == expected
        assert ranks.tokens[-1] == ("<|im_end|>" if req.max_new_tokens else ".")


def test_a_backend_without_token_ranks_refuses_in_one_line() -> None:
    with pytest.raises(TunegateError, match="cannot do 'token_ranks'; use the hf backend"):
        capability(object(), "token_ranks")


@pytest.mark.slow
def test_a_model_ranked_under_itself_is_unshifted_through_the_cli(tmp_path: Path, capsys) -> None:
    record = tmp_path / "base.json"
    assert main(["eval", "organism", "--suites", "identity,math", "--suite-option", "identity.probes=organism",
                 "--suite-option", "identity.target=Tiny", "--suite-option", "math.variant=organism",
                 "--limit", "6", "--out", str(record), "--cache-dir", str(tmp_path / "cache")]) == 0
    out = tmp_path / "shift.json"
    assert main(["analyze", "shift", str(record), str(record), "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    analysis = load_analysis(out)
    assert isinstance(analysis, ShiftAnalysis) and set(analysis.suites) == {"identity", "math", ALL}
    # its own greedy tokens rank first; only the chat template's end-of-turn token, which a base model
    # does not stop on, may rank lower
    ranks = [r for item in analysis.items for t, r in zip(item.tokens, item.ranks) if t != analysis.end_token]
    assert ranks and set(ranks) == {1}
    assert "unshifted" in capsys.readouterr().out
