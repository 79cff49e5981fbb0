"""Evaluation across processes: each rank answers a strided shard of the requests; results are gathered in order.

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

Sharding is strided: with 2 processes, rank 0 answers requests 0, 2, 4, ... and
rank 1 answers 1, 3, 5, ...; ``unshard`` interleaves the gathered shards back::

    shard(["a", "b", "c", "d", "e"], rank=1, world_size=2)   # -> ["b", "d"]
    unshard([["a", "c", "e"], ["b", "d"]])                   # -> ["a", "b", "c", "d", "e"]

The response cache stays consistent because rank 0 owns it: rank 0 looks the
keys up and broadcasts what it found, every rank computes its shard of the
rest, and rank 0 alone writes the gathered results (the other ranks open no
cache). Only rank 0 writes the record file; every rank returns the same record.
Objects travel with ``torch.distributed`` ``all_gather_object`` /
``broadcast_object_list`` (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence, TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")
R = TypeVar("R")


def is_active() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_active() else 0


def world_size() -> int:
    return dist.get_world_size() if is_active() else 1


def is_main() -> bool:
    return rank() == 0


def init_from_env() -> bool:
    """Join the process group a launcher described (``WORLD_SIZE`` > 1), if not joined yet; True when active.

    ``accelerate launch`` and ``torchrun`` set ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
    ``MASTER_ADDR`` and ``MASTER_PORT``. On CUDA each process takes GPU ``LOCAL_RANK``
    (so a plain ``"cuda"`` device means that GPU) and the backend is NCCL; otherwise gloo.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available():
        return is_active()
    if not dist.is_initialized():
        use_cuda = torch.cuda.is_available() and os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true")
        if use_cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return is_active()


def shard(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """Items ``rank``, ``rank + world_size``, ``rank + 2 * world_size``, ... (strided)."""
    return list(items[rank::world_size])


def unshard(shards: Sequence[Sequence[T]]) -> list[T]:
    """The inverse of ``shard``: interleave the shards of ranks 0..N-1 back into the original order."""
    world = len(shards)
    out: list[Any] = [None] * sum(len(s) for s in shards)
    for r, part in enumerate(shards):
        out[r::world] = list(part)
    return out


def all_gather(obj: T) -> list[T]:
    """``obj`` of every rank, in rank order (a one-element list without a process group)."""
    if not is_active():
        return [obj]
    gathered: list[Any] = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast_from_main(obj: T) -> T:
    """Rank 0's ``obj`` on every rank (``obj`` itself without a process group)."""
    if not is_active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if is_active():
        dist.barrier()


def map_sharded(fn: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``fn(items)`` computed shard by shard across the ranks; every rank gets the whole result in order.

    Every rank must call this with the same ``items`` (a collective). ``fn`` must return
    one result per item, in order (as ``Backend.generate`` and ``Backend.loglikelihood`` do).
    """
    if not is_active():
        return fn(list(items))
    local = shard(items, rank(), world_size())
    results = fn(local) if local else []
    if len(results) != len(local):
        raise RuntimeError(f"rank {rank()}: {len(results)} results for {len(local)} requests")
    return unshard(all_gather(results))
