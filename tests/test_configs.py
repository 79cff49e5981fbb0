"""The shipped configs: every pipeline config loads, its gate resolves, and TRL typos are one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunegate.core.errors import TunegateError
from tunegate.evals.gate import SHIPPED_GATES, GateConfig
from tunegate.pipeline import load_gate
from tunegate.training.config import load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"
PIPELINES = sorted(p for p in CONFIGS.glob("*.yaml") if not p.name.startswith("gate"))
GATES = sorted(CONFIGS.glob("gate*.yaml"))
ACCELERATE = sorted((CONFIGS / "accelerate").glob("*.yaml"))
#: GPU config -> its CPU twin (the lessons' CPU runs): same method, settings and gate; smaller model and data.
TWINS = {"qwen3-0.6b-base-sft.yaml": "smollm2-135m-sft.yaml",
         "qwen2.5-0.5b-identity-dpo.yaml": "smollm2-135m-identity-dpo.yaml"}


def _metric_names(path: Path) -> set[str]:
    """Every ``suite.metric`` the config's suites report, built with each stage's options (no data loaded)."""
    config = load_config(path)
    names = set()
    for stage in config.stages:
        for suite in config.eval_spec(stage).build():
            names |= {f"{suite.name}.{spec.name}" for spec in suite.metric_specs()}
    return names


def test_the_real_model_configs_are_shipped() -> None:
    assert {p.name for p in PIPELINES} >= set(TWINS) | set(TWINS.values())


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_pipeline_config_loads_and_its_suites_and_gate_resolve(path: Path) -> None:
    config = load_config(path)
    for stage in config.stages:
        config.eval_spec(stage).build()
    gate = load_gate(config)
    gate.rules_for(sorted(_metric_names(path)))  # a gate metric the suites do not report raises


@pytest.mark.parametrize("path", GATES, ids=lambda p: p.name)
def test_gate_file_loads_for_tunegate_compare(path: Path) -> None:
    gate = GateConfig.from_yaml(path)
    assert gate.rules


def test_every_shipped_gate_file_has_a_name() -> None:
    assert sorted(SHIPPED_GATES.values()) == [p.name for p in GATES]


@pytest.mark.parametrize("name, file", SHIPPED_GATES.items())
def test_a_pipeline_config_names_a_shipped_gate_by_name(name: str, file: str, tmp_path: Path) -> None:
    data = yaml.safe_load((CONFIGS / "smollm2-135m-sft.yaml").read_text())
    data["gate"] = name
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(data))
    assert load_gate(load_config(path)) == GateConfig.from_yaml(CONFIGS / file)


def test_identity_dpo_gate_targets_adherence_and_forbids_the_old_name() -> None:
    config = load_config(CONFIGS / "qwen2.5-0.5b-identity-dpo.yaml")
    rules = {r.metric: r for r in load_gate(config).rules}
    (stage,) = config.stages
    assert stage.trains == ("identity",)
    assert stage.suites == {"identity": {"target": "Deep Qwen", "forbidden": ["Qwen"]}}
    assert (rules["identity.adherence"].op, rules["identity.adherence"].target) == (">=", 0.9)
    assert (rules["identity.leak_rate"].op, rules["identity.leak_rate"].target) == ("<=", 0.05)
    assert all(r.margin for name, r in rules.items() if not name.startswith("identity."))


@pytest.mark.parametrize("gpu, cpu", TWINS.items(), ids=list(TWINS))
def test_cpu_twin_trains_like_the_gpu_config(gpu: str, cpu: str) -> None:
    big, small = load_config(CONFIGS / gpu), load_config(CONFIGS / cpu)
    assert [(s.method, s.trains) for s in big.stages] == [(s.method, s.trains) for s in small.stages]
    # the real SmolLM2 DPO adds TRL's sft loss term (plain DPO degenerated it: configs/smollm2-135m-identity-dpo.yaml)
    assert [dict(s.args) for s in big.stages] == [{k: v for k, v in s.args.items() if k != "loss_type"}
                                                  for s in small.stages]
    assert big.gate == small.gate and list(big.eval.suites) == list(small.eval.suites)


def test_unknown_trl_field_in_a_config_file_is_one_clear_error(tmp_path: Path) -> None:
    import dataclasses

    from trl import SFTConfig

    assert "max_seq_length" not in {f.name for f in dataclasses.fields(SFTConfig)}  # renamed max_length in TRL
    data = yaml.safe_load((CONFIGS / "qwen3-0.6b-base-sft.yaml").read_text())
    data["stages"][0]["args"]["max_seq_length"] = 1024
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(TunegateError) as info:
        load_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message and "stages[0].args" in message and "SFTConfig" in message
    assert "unknown field 'max_seq_length'" in message and "did you mean 'max_length'" in message


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_loads_with_accelerate(path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(path))
    assert config.num_machines == 1 and config.distributed_type.value in ("MULTI_GPU", "FSDP")
