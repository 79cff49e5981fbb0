"""Beyond one process, on CPU (gloo): 2-process training and evaluation agree with the single-process runs.

What is honestly true and asserted here:
- evaluation: a 2-process run (each rank answers a contiguous slice through accelerate, results
  gathered) writes the same greedy responses, per-item scores and metrics as one process, bit for bit;
  log-likelihood items pick the same choices, their summed log-probs agreeing to 1e-5 (a rank batches
  an item with other neighbours, so padding widths and the last float bits differ); rank 0 caches
  every result once;
- training: 2 processes x per-device batch 4 see the same 8 rows at step 1 as 1 process x batch 8 (the
  batches are sharded from the same seeded order), so the step-1 loss (before any update) matches to
  float tolerance; later steps drift by all-reduce rounding, so only step 1 is compared. The checkpoint
  rank 0 saves is a plain HF checkpoint that loads and generates.
Every process runs with one thread (as torch.distributed.run sets it) so both sides use the same kernels.
The end-to-end tests are marked slow (about 1.5 minutes on 2 cores); the 2-process split test (about
10 s of CPU) and the launch-command tests are not.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tunegate.evals.records import RunRecord
from tunegate.core.files import write_jsonl
from tunegate.training.launch import StageSpec, launch_command, launch_env, launch_stage

CONFIGS = Path(__file__).resolve().parents[2] / "configs"

EVAL_ARGS = ["--suites", "identity,math,knowledge", "--suite-option", "identity.target=Tiny",
             "--suite-option", "identity.probes=organism", "--suite-option", "math.variant=organism",
             "--suite-option", "math.limit=24", "--suite-option", "knowledge.variant=organism",
             "--suite-option", "knowledge.limit=24", "--quiet"]
TRAIN_ARGS = {"max_steps": 2, "logging_steps": 1, "learning_rate": 2e-3, "max_length": 128}


#: CPU only (GPUs hidden, so a GPU box runs the same test), one thread per process, offline.
CPU_ENV = {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def _env() -> dict[str, str]:
    return {**launch_env(cpu=True), **CPU_ENV}


def _run(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


#: Each rank maps n requests through map_sharded and writes what it computed and what it got back to its own
#: file (torchrun gives both ranks one stdout, where two lines can land on one).
MAP_SHARDED = """
import json, sys
from pathlib import Path
from tunegate.evals import distributed
assert distributed.init_from_env()
runs = {}
for n in (0, 1, 2, 7, 9):
    computed = []
    def fn(xs):
        computed.extend(xs)
        return [f"r{x}" for x in xs]
    runs[n] = {"result": distributed.map_sharded(fn, list(range(n))), "computed": computed}
distributed.barrier()  # as the runner ends
Path(sys.argv[1], f"rank{distributed.rank()}.json").write_text(json.dumps({"rank": distributed.rank(), "runs": runs}))
"""


def test_map_sharded_splits_across_two_processes_and_keeps_request_order(tmp_path: Path) -> None:
    script = tmp_path / "map_sharded.py"
    script.write_text(MAP_SHARDED)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script), str(tmp_path)],
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = sorted((json.loads(p.read_text()) for p in tmp_path.glob("rank*.json")), key=lambda r: r["rank"])
    assert [r["rank"] for r in ranks] == [0, 1]
    for n in ("0", "1", "2", "7", "9"):
        assert all(r["runs"][n]["result"] == [f"r{x}" for x in range(int(n))] for r in ranks)
        # every request computed once, each rank a contiguous slice, rank order = request order
        assert [x for r in ranks for x in r["runs"][n]["computed"]] == list(range(int(n)))
    assert [len(r["runs"]["7"]["computed"]) for r in ranks] == [4, 3]  # and n=1 leaves rank 1 nothing


def test_launch_command_spawns_n_processes_on_cpu() -> None:
    # accelerate's --cpu flag would run ONE process; --multi_gpu spawns N (gloo on CPU)
    cmd = launch_command(["tunegate.training.launch", "spec.json"], 2, cpu=True)
    assert cmd[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in cmd and "--cpu" not in cmd
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[-3:] == ["-m", "tunegate.training.launch", "spec.json"]


def test_launch_command_with_an_accelerate_config_leaves_the_backend_to_the_file() -> None:
    cmd = launch_command(["tunegate.training.launch", "spec.json"], 1, CONFIGS / "accelerate" / "fsdp.yaml")
    assert cmd[cmd.index("--config_file") + 1] == str(CONFIGS / "accelerate" / "fsdp.yaml")
    assert "--num_processes" not in cmd and "--multi_gpu" not in cmd and "--cpu" not in cmd


@pytest.fixture(scope="module")
def eval_runs(organism_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[RunRecord, RunRecord, Path]:
    tmp = tmp_path_factory.mktemp("dist_eval")
    # the base organism answers chat prompts with an immediate EOS; generation stops at generation_config's eos,
    # the tokenizer's eos and the template's end of turn, so the copy names none of <|endoftext|> and <|im_end|>
    # (assistant turns end without it; prompts render as before) and every response runs to max_new_tokens:
    # each item compares 24-32 greedy steps, not one
    model = Path(shutil.copytree(organism_dir, tmp / "organism"))
    generation = json.loads((model / "generation_config.json").read_text())
    (model / "generation_config.json").write_text(json.dumps({**generation, "eos_token_id": None}))
    tokenizer_config = json.loads((model / "tokenizer_config.json").read_text())
    (model / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config, "eos_token": "<|im_start|>"}))
    template = (model / "chat_template.jinja").read_text()
    (model / "chat_template.jinja").write_text(template.replace("message['content'] + '<|im_end|>' }}{% endgeneration",
                                                                "message['content'] }}{% endgeneration", 1))
    _run([sys.executable, "-m", "tunegate", "eval", str(model), *EVAL_ARGS, "--no-cache",
          "--out", str(tmp / "one.json")])
    _run(launch_command(["tunegate", "eval", str(model), *EVAL_ARGS, "--cache-dir", str(tmp / "cache"),
                         "--out", str(tmp / "two.json")], 2, cpu=True))
    return RunRecord.load(tmp / "one.json"), RunRecord.load(tmp / "two.json"), tmp / "cache" / "responses.sqlite"


@pytest.mark.slow
def test_two_process_eval_gives_the_single_process_record(eval_runs: tuple[RunRecord, RunRecord, Path]) -> None:
    one, two, _ = eval_runs
    assert list(one.suites) == list(two.suites) == ["identity", "math", "knowledge"]
    assert two.fingerprint == one.fingerprint
    for name in ("identity", "math"):  # greedy generation: bit-identical responses, scores and metrics
        assert [i.to_dict() for i in two.suites[name].items] == [i.to_dict() for i in one.suites[name].items]
        assert two.suites[name].metrics == one.suites[name].metrics
        assert all(len(i.response) > 10 for i in one.suites[name].items)  # real continuations were compared


@pytest.mark.slow
def test_two_process_loglikelihood_picks_the_same_choices(eval_runs: tuple[RunRecord, RunRecord, Path]) -> None:
    # the items are batched with other neighbours on each rank, so padding widths differ and the summed
    # log-probabilities may differ in the last float bits; the chosen answers and scores do not
    one, two, _ = eval_runs
    a, b = one.suites["knowledge"], two.suites["knowledge"]
    assert [(i.item_id, i.answer, i.scores) for i in b.items] == [(i.item_id, i.answer, i.scores) for i in a.items]
    for x, y in zip(a.items, b.items):
        assert y.meta["logprobs"] == pytest.approx(x.meta["logprobs"], abs=1e-5)
    assert b.metrics == a.metrics


@pytest.mark.slow
def test_two_process_eval_caches_every_result_once(eval_runs: tuple[RunRecord, RunRecord, Path]) -> None:
    from tunegate.evals.suites import get_suite

    one, _, cache = eval_runs
    choices = sum(len(it.choices) for it in get_suite("knowledge", variant="organism", limit=24).items())
    expected = len(one.suites["identity"].items) + len(one.suites["math"].items) + choices
    with sqlite3.connect(cache) as db:
        (rows,) = db.execute("SELECT COUNT(*) FROM responses").fetchone()
    assert rows == expected


@pytest.fixture(scope="module")
def train_runs(organism_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from tunegate.training.conversations import load_conversations

    tmp = tmp_path_factory.mktemp("dist_train")
    rows = write_jsonl(tmp / "rows.jsonl", load_conversations("organism:sft", seed=0)[:64])
    one = StageSpec(method="sft", model_path=str(organism_dir), dataset=str(rows), out_dir=str(tmp / "one"),
                    name="sft", args={**TRAIN_ARGS, "per_device_train_batch_size": 8})
    one.save(tmp / "one.json")
    _run([sys.executable, "-m", "tunegate.training.launch", str(tmp / "one.json")])
    two = StageSpec(method="sft", model_path=str(organism_dir), dataset=str(rows), out_dir=str(tmp / "two"),
                    name="sft", args={**TRAIN_ARGS, "per_device_train_batch_size": 4})
    with pytest.MonkeyPatch.context() as mp:
        for key, value in CPU_ENV.items():
            mp.setenv(key, value)
        launch_stage(two, 2, cpu=True)
    return tmp / "one", tmp / "two"


@pytest.mark.slow
def test_two_process_step_one_loss_matches_single_process(train_runs: tuple[Path, Path]) -> None:
    one, two = (json.loads((d / "training_log.json").read_text()) for d in train_runs)
    assert one[0]["step"] == two[0]["step"] == 1
    assert two[0]["loss"] == pytest.approx(one[0]["loss"], rel=1e-4)
    assert two[0]["num_tokens"] == one[0]["num_tokens"]  # the same rows were seen


@pytest.mark.slow
def test_two_process_stage_saves_a_checkpoint_that_loads(train_runs: tuple[Path, Path]) -> None:
    from tunegate.evals.backends.hf import HFBackend
    from tunegate.evals.requests import GenerationRequest

    two = train_runs[1]
    manifest = json.loads((two / "manifest.json").read_text())
    assert manifest["num_processes"] == 2
    assert not (two / "launch" / "rank1").exists()
    backend = HFBackend(str(two / "model"), device="cpu")
    (text,) = backend.generate([GenerationRequest(backend.render([{"role": "user", "content": "Hi"}]), 4)])
    assert isinstance(text, str)


@pytest.mark.slow
def test_pipeline_trains_through_accelerate_with_num_processes(organism_dir: Path, tmp_path: Path) -> None:
    config = {
        "name": "dist", "base_model": str(organism_dir),
        "eval": {"suites": {"identity": {"probes": "organism", "target": "Tiny", "limit": 4}}},
        "stages": [{"name": "sft", "method": "sft", "data": "organism:sft", "trains": ["identity"],
                    "data_options": {"limit": 32},
                    "args": {"per_device_train_batch_size": 4, "max_length": 128, "logging_steps": 1}}],
    }
    path = tmp_path / "dist.yaml"
    path.write_text(yaml.safe_dump(config))
    _run([sys.executable, "-m", "tunegate", "run", str(path), "--out", str(tmp_path / "run"), "--max-steps", "1",
          "--num-processes", "2", "--no-report", "--quiet", "--cache-dir", str(tmp_path / "cache")])
    manifest = json.loads((tmp_path / "run" / "stages" / "sft" / "manifest.json").read_text())
    assert manifest["num_processes"] == 2
    assert RunRecord.load(tmp_path / "run" / "records" / "sft.json").stage == "sft"
