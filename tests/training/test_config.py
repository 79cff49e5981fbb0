"""Pipeline config validation: every error is one line naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunegate.core.errors import TunegateError
from tunegate.cli.pipeline import DEMO_CONFIG
from tunegate.training.config import load_config, parse_config


def _demo() -> dict:
    return yaml.safe_load(DEMO_CONFIG.read_text())


def test_demo_config_validates() -> None:
    config = load_config(DEMO_CONFIG)
    assert [s.name for s in config.stages] == ["sft", "dpo"]
    assert config.stages[1].trains == ("identity",)


def test_unknown_trl_field_is_named_with_a_suggestion() -> None:
    data = _demo()
    data["stages"][0]["args"]["lerning_rate"] = 1e-3
    with pytest.raises(TunegateError, match=r"stages\[0\]\.args \(SFTConfig\): unknown field 'lerning_rate' \(did you mean 'learning_rate'\?\)"):
        parse_config(data, "demo.yaml")


def test_dpo_field_in_sft_stage_is_rejected() -> None:
    data = _demo()
    data["stages"][0]["args"]["beta"] = 0.1
    with pytest.raises(TunegateError, match=r"SFTConfig\): unknown field 'beta'"):
        parse_config(data, "demo.yaml")


def test_wrong_type_is_named() -> None:
    data = _demo()
    data["stages"][1]["args"]["beta"] = "high"
    with pytest.raises(TunegateError, match=r"stages\[1\]\.args: field 'beta' must be a number"):
        parse_config(data, "demo.yaml")


def test_null_is_accepted_only_where_the_trl_field_allows_none() -> None:
    data = _demo()
    data["stages"][0]["args"]["max_length"] = None  # SFTConfig.max_length: int | None (no truncation)
    parse_config(data, "demo.yaml")
    data["stages"][0]["args"]["learning_rate"] = None  # a float, never None
    with pytest.raises(TunegateError, match=r"stages\[0\]\.args: field 'learning_rate' must be a number, got NoneType"):
        parse_config(data, "demo.yaml")


def test_unknown_lora_field_is_named() -> None:
    data = _demo()
    data["stages"][0]["lora"] = {"r": 8, "alpha": 16}
    with pytest.raises(TunegateError, match=r"stages\[0\]\.lora \(peft LoraConfig\): unknown field 'alpha'"):
        parse_config(data, "demo.yaml")


def test_unknown_suite_is_named() -> None:
    data = _demo()
    data["eval"]["suites"]["maths"] = {}
    with pytest.raises(TunegateError, match=r"eval.suites: unknown suite 'maths'"):
        parse_config(data, "demo.yaml")


def test_noise_items_must_be_positive() -> None:
    data = _demo()
    data["eval"]["noise_items"] = 0
    with pytest.raises(TunegateError, match=r"demo.yaml: eval: field 'noise_items' must be a positive number of items, got 0"):
        parse_config(data, "demo.yaml")


def test_missing_stage_field_is_named() -> None:
    data = _demo()
    del data["stages"][0]["method"]
    with pytest.raises(TunegateError, match=r"stages\[0\]: missing field 'method'"):
        parse_config(data, "demo.yaml")


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nstages: [\n  - {name: sft\n")
    with pytest.raises(TunegateError, match=r"bad.yaml: malformed YAML at line \d+"):
        load_config(bad)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(TunegateError, match=r"nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_knowledge_on_a_built_dataset_is_named() -> None:
    data = _demo()
    data["stages"][1]["knowledge"] = {"per_group": 4}
    with pytest.raises(TunegateError, match=r"stages\[1\]\.knowledge: needs the stage's 'data' to be a dataset"):
        parse_config(data, "demo.yaml")


def test_unknown_knowledge_option_is_named_with_a_suggestion() -> None:
    data = _demo()
    data["stages"][0]["knowledge"]["exemplar_set"] = 3
    with pytest.raises(TunegateError, match=r"knowledge: unknown field 'exemplar_set' \(did you mean 'exemplar_sets'"):
        parse_config(data, "demo.yaml")
REAL_DPO = Path(__file__).resolve().parents[2] / "configs" / "qwen2.5-0.5b-identity-dpo.yaml"


def test_set_overrides_a_nested_field_with_a_yaml_value() -> None:
    config = load_config(DEMO_CONFIG, sets=["stages.1.args.max_steps=2", "stages.0.lora={r: 8, target_modules: all-linear}",
                                            "base_model=runs/twin", "eval.backend_options.completion_mode=true"])
    assert config.stages[1].args["max_steps"] == 2 and config.base_model == "runs/twin"
    assert config.stages[0].lora == {"r": 8, "target_modules": "all-linear"}
    assert config.eval.backend_options.completion_mode is True
    assert config.overrides[0] == "--set stages.1.args.max_steps=2"


def test_set_is_validated_like_the_file() -> None:
    with pytest.raises(TunegateError, match=r"stages\[1\]\.args \(DPOConfig\): unknown field 'max_stepz' "
                                            r"\(did you mean 'max_steps'\?\)"):
        load_config(DEMO_CONFIG, sets=["stages.1.args.max_stepz=2"])


@pytest.mark.parametrize("pair, message", [
    ("stages.5.args.max_steps=2", r"--set stages.5.args.max_steps=2: 'stages' is a list of 2, no item '5'"),
    ("name.first=x", r"--set name.first=x: 'name' is str, not a mapping or list"),
    ("stages.0.args", r"--set 'stages.0.args': expected KEY=VALUE"),
])
def test_set_on_a_path_that_does_not_exist_names_the_file_and_the_override(pair: str, message: str) -> None:
    with pytest.raises(TunegateError, match=r"demo.yaml: " + message):
        load_config(DEMO_CONFIG, sets=[pair])


def test_limit_caps_every_suite_and_every_stages_rows_but_keeps_smaller_limits() -> None:
    config = load_config(REAL_DPO, sets=["eval.suites.ifeval.limit=3"], limit=8)
    assert {s.name: s.options.limit for s in config.eval_spec(config.stages[0]).suites} == {
        "identity": 8, "ifeval": 3, "math": 8, "knowledge": 8}
    assert config.stages[0].data["limit"] == 8
    assert load_config(DEMO_CONFIG, limit=8).stages[0].data_options == {"limit": 8}


def test_limit_must_be_positive() -> None:
    with pytest.raises(TunegateError, match=r"demo.yaml: --limit: must be a positive integer, got 0"):
        load_config(DEMO_CONFIG, limit=0)


def test_identity_suite_asks_with_the_identity_builders_system_prompt() -> None:
    def system_prompt(config):
        return config.eval_spec(config.stages[-1]).suite("identity").options.system_prompt

    assert system_prompt(load_config(REAL_DPO)) == "You're a helpful assistant."
    assert system_prompt(load_config(DEMO_CONFIG)) is None  # the demo's builder sends none
    assert system_prompt(load_config(REAL_DPO, sets=["eval.suites.identity.system_prompt=Be brief."])) == "Be brief."


def test_run_with_a_bad_override_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    from tunegate.cli import main

    assert main(["run", str(REAL_DPO), "--out", str(tmp_path / "o"), "--set", "stages.0.args.beta=high"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "qwen2.5-0.5b-identity-dpo.yaml: stages[0].args: field 'beta' must be a number" in err[0]


def test_a_key_given_twice_in_a_pipeline_config_is_an_error_naming_the_file_and_key(tmp_path, capsys) -> None:
    from tunegate.cli import main

    text = DEMO_CONFIG.read_text()
    config = tmp_path / "twice.yaml"
    config.write_text(text + "trust_remote_code: false\ntrust_remote_code: true\n")
    lines = len(text.splitlines())
    assert main(["run", str(config), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"tunegate: error: {config}: duplicate key 'trust_remote_code' at line {lines + 2} "
                                       f"(first at line {lines + 1})\n")


def test_a_set_value_with_a_key_given_twice_is_an_error() -> None:
    with pytest.raises(TunegateError, match=r"--set 'stages.0.lora=\{r: 8, r: 16\}': VALUE: duplicate key 'r'"):
        load_config(DEMO_CONFIG, sets=["stages.0.lora={r: 8, r: 16}"])


def test_a_stage_field_of_older_configs_names_its_new_home() -> None:
    data = _demo()
    data["stages"][1]["identity"] = data["stages"][1].pop("suites")["identity"]
    with pytest.raises(TunegateError, match=r"^demo.yaml: stages\[1\]: field 'identity' has moved to "
                                            r"stages\[1\]\.suites\.identity$"):
        parse_config(data, "demo.yaml")


def test_a_stage_overrides_only_suites_that_are_evaluated() -> None:
    data = _demo()
    data["stages"][0]["suites"]["maths"] = {"limit": 3}
    with pytest.raises(TunegateError, match=r"demo.yaml: stages\[0\]\.suites: suite 'maths' is not evaluated"):
        parse_config(data, "demo.yaml")
