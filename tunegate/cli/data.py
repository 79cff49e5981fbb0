"""``tunegate data fetch NAME``: a benchmark's offline copy, in the layout the suites read by default.

    tunegate data fetch gsm8k                  # openai/gsm8k (main) -> ~/.cache/tunegate/data/gsm8k/{test,train}.jsonl
    tunegate data fetch ifeval mmlu --out data  # ./data/ifeval/input_data.jsonl, ./data/mmlu/{test,dev}.jsonl
    tunegate data fetch mmlu --source FOLDER    # from a folder of the dataset's files (huggingface-cli download)
    tunegate eval MODEL --suites math          # reads the copy: no --suite-option math.source=...

Each file written is one line on stdout with its row count and sha256. Where the hub cannot be reached
(``HF_HUB_OFFLINE=1``, no network) the command is one error line saying what to run where it can be, or
which folder to copy (exit 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from tunegate.cli import add_output_options
from tunegate.core.errors import TunegateError
from tunegate.core.registry import Registry

#: The benchmarks a suite reads by default, each declared beside its suite (``tunegate.evals.sources.Benchmark``).
BENCHMARKS: Registry[Any] = Registry("benchmark", {
    "ifeval": "tunegate.evals.suites.ifeval:BENCHMARK",
    "gsm8k": "tunegate.evals.suites.math:BENCHMARK",
    "mmlu": "tunegate.evals.suites.knowledge:BENCHMARK",
})


def register(sub: Any) -> None:
    data = sub.add_parser("data", help="benchmark data for offline use: fetch")
    commands = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    fetch = commands.add_parser(
        "fetch", help="download a benchmark through `datasets` and write it where the suites read it by default",
        description="Write IFEval (google/IFEval), GSM8K (openai/gsm8k, main) or MMLU (cais/mmlu, all) as "
                    "OUT/NAME/*.jsonl in the reference files' schemas; the ifeval, math and knowledge suites read "
                    "$TUNEGATE_DATA/NAME before the hub.")
    fetch.add_argument("names", nargs="+", choices=BENCHMARKS.names(), metavar="NAME",
                       help=f"the benchmark: {', '.join(BENCHMARKS.names())}")
    fetch.add_argument("--out", type=Path, default=None,
                       help="folder to write NAME/ into (default: $TUNEGATE_DATA, else $TUNEGATE_CACHE/data, "
                            "~/.cache/tunegate/data: where the suites look)")
    fetch.add_argument("--source", default=None,
                       help="read from here instead of the hub id: a folder of the dataset's files "
                            "(huggingface-cli download --repo-type dataset ID --local-dir FOLDER), one save_to_disk "
                            "wrote, or another hub id (one NAME only)")
    add_output_options(fetch)
    fetch.set_defaults(func=cmd_fetch)


def cmd_fetch(args: argparse.Namespace) -> int:
    from tunegate.core.files import check_output_path
    from tunegate.evals.sources import DATA_ENV, data_dir, fetch_benchmark

    if args.source is not None and len(args.names) > 1:
        raise TunegateError(f"--source reads one benchmark; give one NAME, not {' '.join(args.names)}")
    out = check_output_path(args.out if args.out is not None else data_dir(), "--out", directory=True)
    for name in args.names:
        for fetched in fetch_benchmark(BENCHMARKS.get(name), out, args.source):
            print(f"{fetched.path}: {fetched.rows} rows, sha256 {fetched.sha256}")
    same = out.expanduser().resolve() == data_dir().resolve()
    print("the suites read these by default" if same else
          f"the suites read these by default once {DATA_ENV}={out} is set")
    return 0
