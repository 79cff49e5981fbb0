"""tunegate's pytest plugin: gate a checkpoint (or a saved record) against a baseline, one test per metric.

Registered through the ``pytest11`` entry point, so an installed tunegate gates
any repository's tests::

    pytest --gate-checkpoint out/sft --gate-baseline runs/base.json --gate-trains identity \\
           --gate-config gate.yaml --gate-report report.html
    pytest --gate-checkpoint runs/sft.json --gate-baseline store:tiny --gate-store runs/tunegate.sqlite
    pytest --gate-checkpoint runs/sft.json --gate-model-line tiny --gate-update-baseline   # first run: bless it
    pytest --gate-checkpoint out/sft --gate-baseline base.json --gate-suites math \
           --gate-backend openai --gate-base-url http://127.0.0.1:8000/v1           # a served checkpoint

Where the gate tests come from: ``tunegate/gate_tests.py`` holds one test,
``test_gate[suite.metric]``, parametrized by this plugin over the compared
metrics (so ``-k math`` selects and JUnit XML lists each metric). When
``--gate-checkpoint`` is given and no collected test uses the ``gate_metric``
fixture, the plugin adds that module's tests itself, in any repository, so
nothing needs to be copied. Without
``--gate-checkpoint`` the gate test is skipped ("no --gate-checkpoint given"),
never passed. A gate test fails with the numbers, the verdict and the worst
flipped items; a metric the gate set to ``warn`` (underpowered but within its
margin, or inconclusive) passes with a GateWarning. Teams can write their own assertions with the fixtures
``gate_record``, ``gate_baseline_record`` and ``gate_comparison``.

Bad input (a corrupt record, a missing baseline, an unknown gate metric, records whose
items asked different questions) is one line naming the file and field, and the run exits
2 (a collection error, or an error in a test that uses the fixtures); an unexpected
exception inside tunegate exits 3 (pytest's internal error) with one line, its traceback
under ``TUNEGATE_DEBUG=1``. Only a gate test failing exits 1.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import pytest

from tunegate.core.errors import TunegateError, error_line, exit_code
from tunegate.evals.backends import DEFAULT_BACKEND, BackendOptions, backend_flags, options_from
from tunegate.evals.gate import format_gate_summary
from tunegate.evals.records import Comparison, RunRecord
from tunegate.evals.spec import LIMIT_HELP, LM_EVAL_INCLUDE_HELP, EvalSpec

NO_CHECKPOINT = "no --gate-checkpoint given"
#: The module of gate tests this plugin parametrizes and, where no collected test uses them, collects.
GATE_TESTS = "tunegate.gate_tests"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("tunegate", "tunegate regression gate")
    add = group.addoption
    add("--gate-checkpoint", metavar="MODEL|RECORD.json", help="checkpoint dir / hub id to evaluate, or a saved RunRecord .json")
    add("--gate-baseline", metavar="RECORD.json|MODEL|store:LINE", help="baseline record, checkpoint, or store:MODEL_LINE for the blessed baseline")
    add("--gate-config", metavar="GATE", help="gate rules (targets, margins, confidence): a YAML file or a shipped "
                                              "gate's name, dpo or sft")
    add("--gate-suites", metavar="S1,S2", help="suites to evaluate/compare (default: those of the baseline record)")
    add("--gate-suite-option", metavar="SUITE.OPTION=VALUE", action="append", default=[],
        help="option of a suite evaluated from a checkpoint, as `tunegate eval --suite-option` "
             "(`tunegate eval --help` lists every suite's options)")
    add("--gate-limit", metavar="N", type=int, default=None, help=LIMIT_HELP)
    add("--gate-lm-eval-include-path", metavar="DIR", default=None, help=LM_EVAL_INCLUDE_HELP)
    add("--gate-trains", metavar="S1,S2", default="", help="suites the stage trained (gated on targets, not non-inferiority)")
    add("--gate-report", metavar="PATH", help="write the HTML comparison report here")
    add("--gate-store", metavar="PATH|sqlite:///PATH", help="results store (default runs/tunegate.sqlite when a model line is given)")
    add("--gate-model-line", metavar="LINE", help="model line in the store: its blessed run is the default baseline")
    add("--gate-update-baseline", action="store_true", default=False, help="store this run and bless it as the model line's baseline")
    add("--gate-backend", metavar="hf|vllm|openai", default=None,
        help="backend that evaluates a checkpoint given to --gate-checkpoint/--gate-baseline (default hf)")
    for flag, kwargs in backend_flags():  # --gate-base-url, --gate-batch-size ... as `tunegate eval --base-url ...`
        add(f"--gate-{flag[2:]}", **{**kwargs, "dest": f"gate_{kwargs['dest']}"})


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(s.strip() for s in (value or "").split(",") if s.strip())


@dataclass(frozen=True)
class GateOptions:
    checkpoint: str | None
    baseline: str | None
    config: str | None
    suites: tuple[str, ...]
    trains: tuple[str, ...]
    report: str | None
    store: str | None
    model_line: str | None
    update_baseline: bool
    suite_options: tuple[str, ...] = ()
    limit: int | None = None
    backend: str | None = None
    backend_options: BackendOptions = BackendOptions()
    lm_eval_include_path: str | None = None

    @classmethod
    def from_config(cls, config: pytest.Config) -> "GateOptions":
        opt = config.getoption
        backend_options = options_from({kw["dest"]: opt(f"gate_{kw['dest']}") for _, kw in backend_flags()})
        return cls(opt("gate_checkpoint"), opt("gate_baseline"), opt("gate_config"), _csv(opt("gate_suites")),
                   _csv(opt("gate_trains")), opt("gate_report"), opt("gate_store"), opt("gate_model_line"),
                   bool(opt("gate_update_baseline")), tuple(opt("gate_suite_option") or ()), opt("gate_limit"),
                   opt("gate_backend"), backend_options, opt("gate_lm_eval_include_path"))

    def eval_spec(self, suites: tuple[str, ...]) -> EvalSpec:
        """The EvalSpec a checkpoint is evaluated with: the suites, their options, ``--gate-limit``, the backend."""
        from tunegate.evals.spec import eval_spec, suite_option_pairs

        flag = "--gate-suite-option"
        return eval_spec(list(suites), suite_option_pairs(self.suite_options, flag), limit=self.limit,
                         backend=self.backend or DEFAULT_BACKEND, backend_options=self.backend_options, where=flag,
                         lm_eval_include_path=self.lm_eval_include_path)


class GateSession:
    """Loads (or evaluates) both runs once, compares them, and remembers the outcome for the summary."""

    def __init__(self, options: GateOptions, config: pytest.Config | None = None) -> None:
        self.options = options
        self.config = config
        self.candidate: RunRecord | None = None
        self.baseline: RunRecord | None = None
        self.comparison: Comparison | None = None
        self.error: str | None = None
        self.exit_code: int | None = None  # what the session must exit with when tunegate itself failed
        self.skip_reason: str | None = NO_CHECKPOINT if not options.checkpoint else None
        self.notes: list[str] = []
        self._loaded = False

    # --- loading -----------------------------------------------------------------------

    def load(self) -> None:
        """Load/evaluate and compare once; errors are kept and re-raised as one clean line."""
        if not self._loaded and self.skip_reason is None:
            self._loaded = True
            try:
                self._load()
            except Exception as exc:  # noqa: BLE001 - one line: bad input exits 2, a bug 3 (never 1)
                self.fail(exc)
        if self.error:
            pytest.fail(f"tunegate: {self.error}", pytrace=False)

    def fail(self, exc: Exception) -> None:
        """Keep the error line and the exit code it ends the session with (``pytest_sessionfinish``)."""
        self.error = error_line(exc).removeprefix("error: ")
        self.exit_code = exit_code(exc)

    def _load(self) -> None:
        from tunegate.evals.compare import compare_records
        from tunegate.evals.gate import GateConfig

        o = self.options
        gate = GateConfig.from_yaml(o.config) if o.config else GateConfig()
        self.baseline = self._baseline_record()
        suites = o.suites or (tuple(self.baseline.suites) if self.baseline else ())
        # the candidate's gated suites; one it lacks is the gate's to judge (missing_suite: fail by default)
        self.candidate = self._only(self._run(o.checkpoint, suites, "candidate"), suites, strict=False)
        if self.baseline is None:
            self.skip_reason = f"no baseline for model line '{o.model_line}' yet; this run will be blessed"
            return
        self.baseline = self._only(self.baseline, suites)
        self.comparison = compare_records(self.baseline, self.candidate, gate, trains=o.trains)

    def _baseline_record(self) -> RunRecord | None:
        o = self.options
        spec = o.baseline or (f"store:{o.model_line}" if o.model_line else None)
        if spec is None:
            raise TunegateError("missing baseline: give --gate-baseline (record .json, checkpoint or store:LINE) "
                                "or --gate-model-line with a blessed baseline in --gate-store")
        if spec.startswith("store:"):
            line = spec[len("store:"):]
            record = self.store(create=o.update_baseline and line == o.model_line).blessed(line)
            if record is None and not (o.update_baseline and line == o.model_line):
                raise TunegateError(f"missing baseline: no blessed run for model line '{line}' in {self.store().path} "
                                    f"(bless one with --gate-update-baseline)")
            return record
        return self._run(spec, o.suites, "baseline")

    def _run(self, spec: str, suites: tuple[str, ...], role: str) -> RunRecord:
        if spec.endswith(".json"):
            return RunRecord.load(spec)
        if not suites:
            raise TunegateError(f"--gate-suites is needed to evaluate the {role} checkpoint '{spec}'")
        from tunegate.evals.runner import evaluate  # lazily: loads torch

        # every suite's options and data checked before the model loads; the candidate's pairwise judge suite
        # judges its answers against the baseline's
        wanted = self.options.eval_spec(suites).referenced(self.baseline if role == "candidate" else None)
        with self._terminal() as show:
            return evaluate(spec, wanted, stage=role, progress=show)

    @contextmanager
    def _terminal(self) -> Iterator[bool]:
        """Progress bars of an evaluation go to the terminal (past pytest's capture), unless ``-q``."""
        capman = self.config.pluginmanager.getplugin("capturemanager") if self.config else None
        if capman is None or self.config.option.verbose < 0:
            yield False
            return
        with capman.global_and_fixture_disabled():
            yield True

    @staticmethod
    def _only(record: RunRecord, suites: tuple[str, ...], strict: bool = True) -> RunRecord:
        """``record`` with only ``suites``; one it lacks is an error when ``strict``, else left out."""
        if not suites:
            return record
        missing = [s for s in suites if s not in record.suites]
        if missing and strict:
            raise TunegateError(f"record of '{record.model}' has no suite(s) {missing} (it has {sorted(record.suites)})")
        return replace(record, suites={s: record.suites[s] for s in suites if s in record.suites})

    def store(self, create: bool = False) -> Any:
        """The results store; only storing a run creates one (reading a missing store is an error)."""
        from tunegate.evals.store import DEFAULT_STORE, Store

        if not hasattr(self, "_store"):
            self._store = Store(self.options.store or DEFAULT_STORE, create=create)
        return self._store

    # --- collection and results ----------------------------------------------------------

    def parametrize(self, metafunc: pytest.Metafunc) -> None:
        if self.skip_reason is None:
            self.load()
        if self.comparison is None:
            skip = pytest.param(None, marks=pytest.mark.skip(reason=self.skip_reason or NO_CHECKPOINT), id="gate")
            metafunc.parametrize("gate_metric", [skip])
            return
        metafunc.parametrize("gate_metric", list(self.comparison.metrics),
                             ids=[f"{m.suite}.{m.metric}" for m in self.comparison.metrics])

    def finish(self) -> None:
        """Store the run and comparison (when a model line is given), bless on request, write the report;
        a failure there is one line and exit code 2 (or 3), as in loading."""
        if self.candidate is None or self.error:
            return
        try:
            self._finish()
        except Exception as exc:  # noqa: BLE001
            self.fail(exc)

    def _finish(self) -> None:
        o = self.options
        if o.model_line and (o.store or o.update_baseline):
            store = self.store(create=True)
            run_id = store.add_run(self.candidate, o.model_line)
            self.notes.append(f"stored run {run_id} in {store.path}")
            if self.comparison is not None:
                store.add_comparison(self.comparison, model_line=o.model_line, candidate_run_id=run_id,
                                     baseline_run_id=store.blessed_run_id(o.model_line))
            if o.update_baseline:
                store.bless(o.model_line, run_id)
                self.notes.append(f"blessed run {run_id} as the baseline of '{o.model_line}'")
        elif o.update_baseline:
            self.notes.append("--gate-update-baseline needs --gate-model-line; nothing blessed")
        if o.report and self.comparison is not None and self.baseline is not None:
            self.notes.append(write_report(self.baseline, self.candidate, self.comparison, o.report))

    def summary(self, reporter: Any) -> None:
        if self.options.checkpoint is None and not self.notes:
            return
        reporter.write_sep("=", "tunegate gate")
        if self.error:
            reporter.write_line(f"error: {self.error}")
        elif self.comparison is not None:
            reporter.write_line(format_gate_summary(self.comparison))
        elif self.skip_reason:
            reporter.write_line(f"skipped: {self.skip_reason}")
        for note in self.notes:
            reporter.write_line(note)


def write_report(baseline: RunRecord, candidate: RunRecord, comparison: Comparison, path: str) -> str:
    try:
        from tunegate.reports.html import render_comparison_report
    except ImportError as exc:
        return f"report not written: reports.html.render_comparison_report is unavailable ({exc})"
    return f"report: {render_comparison_report(baseline, candidate, comparison, Path(path))}"


def _session(config: pytest.Config) -> GateSession:
    return config._tunegate  # type: ignore[attr-defined]


# --- hooks (each one to three lines) -----------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    config._tunegate = GateSession(GateOptions.from_config(config), config)  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "gate_metric" in metafunc.fixturenames:
        _session(metafunc.config).parametrize(metafunc)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection sees the items
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("gate_checkpoint") and not any("gate_metric" in getattr(i, "fixturenames", ()) for i in items):
        items.extend(_gate_module_items(session))


def _gate_module_items(session: pytest.Session) -> list[pytest.Item]:
    """Collect tunegate/gate_tests.py as pytest would, reporting errors as collection errors (exit code 2)."""
    from importlib.util import find_spec

    from _pytest.runner import collect_one_node

    path = Path(find_spec(GATE_TESTS).origin)  # type: ignore[arg-type, union-attr]
    collector = pytest.Module.from_parent(session, path=path, nodeid="tunegate_gate.py")
    report = collect_one_node(collector)
    session.ihook.pytest_collectreport(report=report)
    return [i for i in report.result if isinstance(i, pytest.Item)] if report.passed else []


def pytest_sessionfinish(session: pytest.Session) -> None:
    gate = _session(session.config)
    gate.finish()
    if gate.exit_code is not None:  # tunegate failed, not the gate: 2 bad input, 3 internal error
        session.exitstatus = gate.exit_code


def pytest_terminal_summary(terminalreporter: Any) -> None:
    _session(terminalreporter.config).summary(terminalreporter)


# --- fixtures ----------------------------------------------------------------------------


def _loaded(request: pytest.FixtureRequest) -> GateSession:
    s = _session(request.config)
    if s.skip_reason == NO_CHECKPOINT:
        pytest.skip(NO_CHECKPOINT)
    s.load()
    return s


@pytest.fixture(scope="session")
def gate_record(request: pytest.FixtureRequest) -> RunRecord:
    """The candidate RunRecord (loaded from --gate-checkpoint, or evaluated once)."""
    return _loaded(request).candidate  # type: ignore[return-value]


@pytest.fixture(scope="session")
def gate_baseline_record(request: pytest.FixtureRequest) -> RunRecord:
    """The baseline RunRecord; skips when the model line has no baseline yet."""
    s = _loaded(request)
    if s.baseline is None:
        pytest.skip(s.skip_reason or "no baseline")
    return s.baseline


@pytest.fixture(scope="session")
def gate_comparison(request: pytest.FixtureRequest) -> Comparison:
    """The Comparison of candidate vs baseline under --gate-config."""
    s = _loaded(request)
    if s.comparison is None:
        pytest.skip(s.skip_reason or "no comparison")
    return s.comparison
