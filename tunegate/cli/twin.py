"""``tunegate twin MODEL_ID --out DIR``: a random-initialised twin of a real checkpoint, offline.

    tunegate twin Qwen/Qwen2.5-0.5B-Instruct --out twins/qwen2.5             # full size (0.49B parameters)
    tunegate twin Qwen/Qwen3-0.6B-Base --out twins/qwen3-2l --layers 2      # 2 layers, for CPU tests
    tunegate run configs/qwen3-0.6b-base-sft.yaml --out runs/q3 --set base_model=twins/qwen3-2l ...
"""

from __future__ import annotations

import argparse
from typing import Any

from tunegate.core.files import check_output_path


def register(sub: Any) -> None:
    from tunegate.training.twins import TWINS

    twin = sub.add_parser("twin", help="a random-initialised twin of a real model: real architecture, tokenizer, "
                                       "chat template and eos/pad, no hub")
    twin.add_argument("model_id", metavar="MODEL_ID", help=f"the real model ({', '.join(TWINS)})")
    twin.add_argument("--out", required=True, help="output checkpoint directory (new or empty)")
    twin.add_argument("--layers", type=int, default=None, metavar="N",
                      help="decoder layers (default: the real depth); only the depth shrinks")
    twin.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    twin.set_defaults(func=cmd_twin)


def cmd_twin(args: argparse.Namespace) -> int:
    import json

    from tunegate.training.twins import build_twin

    check_output_path(args.out, directory=True)
    path = build_twin(args.model_id, args.out, layers=args.layers, seed=args.seed)
    info = json.loads((path / "twin.json").read_text())
    print(f"twin of {info['twin_of']}: {info['num_hidden_layers']} of {info['real_num_hidden_layers']} layers, "
          f"{info['parameters'] / 1e6:.1f}M parameters, random weights (seed {info['seed']}) -> {path}")
    return 0
