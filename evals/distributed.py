"""Evaluation across processes: each rank answers a contiguous slice of the requests; results are gathered in order.

Run any evaluation under ``accelerate launch`` (or ``torchrun``) and the runner
splits every chunk of requests across the processes, then gathers them back
into the original order, so the RunRecord is the one a single process writes::

    accelerate launch --num_processes 8 --multi_gpu -m tunegate eval Qwen/Qwen2.5-0.5B-Instruct ...
    accelerate launch --num_processes 2 --multi_gpu -m tunegate eval runs/demo/stages/sft/model \\
        --suites identity,math --suite-option identity.target=Tiny --suite-option identity.probes=organism \\
        --suite-option math.variant=organism --out sft.json        # no GPU: 2 CPU processes over gloo
    torchrun --nproc_per_node 2 -m tunegate eval ...                # the same without accelerate

(``accelerate launch --cpu`` starts ONE process unless MPI is configured; ``--multi_gpu`` spawns
the N local processes through ``torch.distributed.run`` whether or not there are GPUs.)

accelerate does the work: ``PartialState`` joins the process group the launcher
described (gloo on CPU, NCCL on CUDA, each process on GPU ``LOCAL_RANK``),
``split_between_processes`` gives each rank a contiguous slice of the requests,
and ``gather_object`` concatenates the ranks' results in rank order, which is
the original order::

    # 2 processes, requests ["a", "b", "c", "d", "e"]:
    # rank 0 answers ["a", "b", "c"], rank 1 ["d", "e"]; gather_object -> 5 results in request order

The response cache stays consistent because rank 0 owns it: rank 0 looks the
keys up and broadcasts what it found (``broadcast_object_list``), every rank
computes its slice of the rest, and rank 0 alone writes the gathered results
(the other ranks open no cache). Only rank 0 writes the record file; every rank
returns the same record.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
R = TypeVar("R")


def is_active() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _state() -> Any:
    """accelerate's PartialState (joins the launcher's process group on first use; gloo on CPU)."""
    from accelerate import PartialState

    use_cuda = torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true")
    return PartialState(cpu=not use_cuda)


def rank() -> int:
    return _state().process_index if is_active() else 0


def world_size() -> int:
    return _state().num_processes if is_active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group a launcher described (``WORLD_SIZE`` > 1), if not joined yet; True when active.

    ``accelerate launch`` and ``torchrun`` set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR`` and ``MASTER_PORT``; ``ACCELERATE_USE_CPU`` (or no CUDA) keeps it on CPU.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        state = _state()
        # leave the group on exit: a gloo process that exits with its group alive can abort ("terminate called")
        atexit.register(state.destroy_process_group)
    return is_active()


def broadcast_from_main(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if not is_active():
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj if is_main() else None], from_process=0)[0]


def barrier() -> None:
    if is_active():
        _state().wait_for_everyone()


def map_sharded(fn: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``fn(items)`` computed slice by slice across the ranks; every rank gets the whole result in order.

    Every rank must call this with the same ``items`` (a collective). ``fn`` must return
    one result per item, in order (as ``Backend.generate`` and ``Backend.loglikelihood`` do).
    """
    if not is_active():
        return fn(list(items))
    from accelerate.utils import gather_object

    with _state().split_between_processes(list(items)) as local:
        results = fn(local) if local else []
    if len(results) != len(local):
        raise RuntimeError(f"rank {rank()}: {len(results)} results for {len(local)} requests")
    return gather_object(results)
