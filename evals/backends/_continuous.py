"""Continuous batching for the ``hf`` backend: no padding waste, shared prompt prefixes computed once.

``model.generate`` decodes a static batch until its longest answer ends (a finished row keeps computing pad tokens)
and its ``DynamicCache`` copies the whole KV cache at every step (``torch.cat``), which at IFEval's 1280-token budget
costs a CPU more than the forward itself. ``generate_tokens`` keeps ``batch_size`` rows decoding in one forward per
step over a preallocated KV slab written in place: a finished row's slot takes the next prompt at once, and prompts
that share a long token prefix (GSM8K's five shots as chat turns, a system prompt) get that prefix's keys and values
from one forward instead of one per prompt::

    decoding = Decoding(max_new_tokens=32, eos=(2,), stop=("Question:",))
    generate_tokens(model, [[1, 504, 3], [1, 504, 9, 12]], decoding, batch_size=32, text=tokenizer.decode)
    # -> [[415, 2], [88, 91, 2]]   (each answer's token ids, ending with its eos or at a stop string)

Greedy answers are ``generate``'s argmax, identical except where a row's numerics depend on which rows share its
batch (the A/A noise floor ``tunegate noise`` measures as batch N vs 1). ``supports(model)`` says whether a model can
run here: every layer a plain full-attention cache (Llama, Qwen2, Mistral without a window, ...); others (sliding
windows: Gemma 3) keep ``generate``.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from tunegate.evals.backends._tokens import shared_prefixes


@dataclass(frozen=True)
class Decoding:
    """How every row of one ``generate_tokens`` call decodes."""

    max_new_tokens: int
    eos: tuple[int, ...]
    stop: tuple[str, ...] = ()
    do_sample: bool = False
    temperature: float = 1.0

    @property
    def stop_window(self) -> int:
        """Tokens to decode at the end of an answer to see a stop string that its newest token completes."""
        return max((len(s.encode("utf-8")) for s in self.stop), default=0) + 2


def supports(model: Any) -> bool:
    """Whether ``model`` decodes here: a causal LM whose every layer caches plain full-attention keys and values
    and whose forward takes ``cache`` and ``logits_to_keep``."""
    config = model.config
    if getattr(config, "is_encoder_decoder", False) or not getattr(config, "is_causal", True):
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT model's own
    try:
        layers = DynamicCache(config=config).layers
        params = inspect.signature(base.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False
    return bool(layers) and all(type(layer) is DynamicLayer for layer in layers) \
        and "cache" in params and "logits_to_keep" in params


def generate_tokens(model: Any, prompts: Sequence[Sequence[int]], decoding: Decoding, *, batch_size: int,
                    text: Callable[[list[int]], str], pad_id: int = 0,
                    done: dict[int, list[int]] | None = None) -> list[list[int]]:
    """Each prompt's answer (token ids), in prompt order; see the module docstring.

    ``done`` collects answers as they finish (keyed by prompt index), so a caller whose run fails part way (out of
    memory) keeps them and reruns only the rest.
    """
    done = {} if done is None else done
    engine = _Engine(model, decoding, batch_size, text, pad_id, done)
    engine.run([list(p) for p in prompts])
    return [done[i] for i in range(len(prompts))]


#: What sharing a prefix costs, in tokens' worth of forward: a group of n prompts sharing p tokens shares them when
#: (n - 1) * p exceeds it (the prefix's own forward and the copies of its cache into each batch).
PREFIX_COST = 64


#: New tokens the slab first makes room for beyond the longest prompt; it grows by half when a row needs more.
SLAB_AHEAD = 256


@dataclass
class _Row:
    index: int  # the prompt's index
    tokens: list[int]  # answer so far; its last token is the next input
    position: int  # position id of the next input


class _SlabLayer(DynamicLayer):
    """One layer's view of the slab for ``transformers``' attention: writes in place, reads the live window."""

    def __init__(self, slab: "_Slab", layer: int) -> None:
        super().__init__()
        self.slab, self.layer, self.is_initialized = slab, layer, True

    def update(self, keys: torch.Tensor, values: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, ...]:
        s, width = self.slab, keys.shape[-2]
        s.keys[self.layer][:, :, s.hi:s.hi + width] = keys
        s.values[self.layer][:, :, s.hi:s.hi + width] = values
        return s.keys[self.layer][:, :, s.lo:s.hi + width], s.values[self.layer][:, :, s.lo:s.hi + width]

    def get_seq_length(self) -> int:
        return self.slab.hi - self.slab.lo

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.get_seq_length() + query_length, 0


@dataclass
class _Slab:
    """Keys and values of every layer, ``[slots, kv_heads, capacity, head_dim]``, and a ``[slots, capacity]`` mask
    of the columns each slot's row attends to. Live columns are ``[lo, hi)``: every row's newest token sits at
    ``hi - 1`` (rows are aligned at their ends), a row admitted with ``w`` cached tokens fills ``[hi - w, hi)``."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    mask: torch.Tensor
    lo: int = 0
    hi: int = 0
    starts: dict[int, int] = field(default_factory=dict)  # slot -> first column of its row

    @classmethod
    def like(cls, cache: Any, slots: int, capacity: int) -> "_Slab":
        """An empty slab shaped after a prefill's cache (its kv heads, head size, dtype, device)."""
        def empty(t: torch.Tensor) -> torch.Tensor:
            return t.new_zeros((slots, t.shape[1], capacity, t.shape[3]))
        layers = cache.layers
        return cls([empty(layer.keys) for layer in layers], [empty(layer.values) for layer in layers],
                   torch.zeros((slots, capacity), dtype=torch.long, device=layers[0].keys.device))

    @property
    def capacity(self) -> int:
        return self.mask.shape[1]

    def cache(self) -> Any:
        cache = DynamicCache()
        cache.layers = [_SlabLayer(self, i) for i in range(len(self.keys))]
        return cache

    def place(self, slots: list[int], cache: Any, mask: torch.Tensor) -> None:
        """Copy a prefill's cache (rows in ``slots`` order) and mask into those slots, ending at ``hi``."""
        width = mask.shape[1]
        self.make_room(width, 0)
        index = torch.tensor(slots, device=self.mask.device)
        for buffers, name in ((self.keys, "keys"), (self.values, "values")):
            for buf, layer in zip(buffers, cache.layers):
                buf[index, :, self.hi - width:self.hi] = getattr(layer, name)
        self.mask[index] = 0
        self.mask[index, self.hi - width:self.hi] = mask
        for slot in slots:
            self.starts[slot] = self.hi - width
        self.lo = min(self.starts.values())

    def release(self, slot: int) -> None:
        self.starts.pop(slot, None)
        self.mask[slot] = 0
        self.lo = min(self.starts.values(), default=self.hi)

    def make_room(self, width: int, ahead: int) -> None:
        """Make ``hi >= width`` (room for a row of ``width`` cached tokens ending at ``hi``) and ``ahead`` free
        columns after ``hi``: move the live window (right, or back to the slab's start), growing the slab by half
        when it is full."""
        n = self.hi - self.lo
        if self.hi >= width and self.hi + ahead <= self.capacity:
            return
        new = max(0, width - n)
        need = new + n + ahead
        self._move(new, self.capacity if need <= self.capacity else need + need // 2, list(range(len(self.mask))))

    def keep(self, slots: list[int]) -> None:
        """Keep only ``slots``' rows (renumbered 0, 1, ...), their window moved to the slab's start."""
        self._move(0, self.capacity, slots)

    def _move(self, new: int, capacity: int, slots: list[int]) -> None:
        """The live window of ``slots``' rows copied to start at column ``new`` of a slab of ``capacity`` columns."""
        n, index = self.hi - self.lo, torch.tensor(slots, device=self.mask.device)

        def moved(t: torch.Tensor, dim: int) -> torch.Tensor:  # ``dim``: the column dimension
            shape = list(t.shape)
            shape[0], shape[dim] = len(slots), capacity
            out = t.new_zeros(shape)
            out.narrow(dim, new, n).copy_(t.narrow(dim, self.lo, n).index_select(0, index))
            return out
        self.keys = [moved(t, 2) for t in self.keys]
        self.values = [moved(t, 2) for t in self.values]
        self.mask = moved(self.mask, 1)
        self.starts = {k: self.starts[s] - self.lo + new for k, s in enumerate(slots) if s in self.starts}
        self.lo, self.hi = new, new + n


class _Engine:
    """The decoding loop of ``generate_tokens``: admit prompts into free slots, one forward per step, finish rows."""

    def __init__(self, model: Any, decoding: Decoding, batch_size: int, text: Callable[[list[int]], str],
                 pad_id: int, done: dict[int, list[int]]) -> None:
        self.model, self.decoding, self.batch_size, self.text = model, decoding, batch_size, text
        self.pad_id, self.done = pad_id, done
        self.device = next(model.parameters()).device
        self.rows: list[_Row | None] = [None] * batch_size
        self.slab: _Slab | None = None
        self.prefixes: dict[int, tuple[int, Any]] = {}  # group -> (prefix length, its cache)

    def run(self, prompts: list[list[int]]) -> None:
        todo = [i for i in range(len(prompts)) if i not in self.done]
        groups = shared_prefixes([prompts[i] for i in todo], [len(prompts[i]) - 1 for i in todo], PREFIX_COST)
        queue = [(g, length, todo[i]) for g, (length, members) in enumerate(groups)
                 for i in sorted(members, key=lambda i: -len(prompts[todo[i]]))]
        self.remaining = {g: len(members) for g, (_, members) in enumerate(groups)}
        self.prompts = prompts
        while queue or any(self.rows):
            free = [s for s, row in enumerate(self.rows) if row is None]
            if free and queue:
                self._admit(free, queue[:len(free)])
                del queue[:len(free)]
                continue  # rows finished on their first token leave free slots: admit again first
            if not queue and self.slab is not None and sum(r is not None for r in self.rows) <= len(self.rows) // 2:
                self._compact()
            self._step()

    def _admit(self, slots: list[int], entries: list[tuple[int, int, int]]) -> None:
        """Prefill the prompts of ``entries`` (group, prefix length, prompt index), group by group, into ``slots``."""
        by_group: dict[int, list[int]] = {}
        for g, _, index in entries:
            by_group.setdefault(g, []).append(index)
        lengths = {g: length for g, length, _ in entries}
        for g, indices in by_group.items():
            taken, slots = slots[:len(indices)], slots[len(indices):]
            prefix = self._prefix(g, lengths[g], indices[0])
            cache, mask, logits = self._prefill([self.prompts[i] for i in indices], prefix)
            if self.slab is None:
                longest = max(len(p) for p in self.prompts)
                ahead = min(self.decoding.max_new_tokens, SLAB_AHEAD)
                self.slab = _Slab.like(cache, self.batch_size, longest + ahead + 1)
            self.slab.place(taken, cache, mask)
            first = self._choose(logits)
            for slot, index, token in zip(taken, indices, first):
                self.rows[slot] = _Row(index, [token], len(self.prompts[index]))
                self._finish_if_done(slot)
            self.remaining[g] -= len(indices)
            if not self.remaining[g]:
                self.prefixes.pop(g, None)

    def _prefix(self, group: int, length: int, index: int) -> tuple[int, Any] | None:
        """The group's shared prefix (its length and cache), computed by its first prompt's admission."""
        if length == 0:
            return None
        if group not in self.prefixes:
            ids = torch.tensor([self.prompts[index][:length]], device=self.device)
            self.prefixes[group] = (length, prefill(self.model, ids, None, None, None)[1])
        return self.prefixes[group]

    def _prefill(self, prompts: list[list[int]], prefix: tuple[int, Any] | None) -> tuple[Any, torch.Tensor, torch.Tensor]:
        """One forward over left-padded ``prompts`` after their shared ``prefix``: (cache, mask, last logits)."""
        done, past = prefix if prefix is not None else (0, None)
        rows = [p[done:] for p in prompts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[self.pad_id] * (width - len(r)) + r for r in rows], device=self.device)
        own = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=self.device)
        mask = torch.cat([own.new_ones((len(rows), done)), own], dim=1)
        positions = (done + own.cumsum(-1) - 1).clamp(min=0)
        cache = expand(past, len(rows)) if past is not None else None
        logits, cache = prefill(self.model, ids, mask, positions, cache)
        return cache, mask, logits

    def _step(self) -> None:
        slab = self.slab
        slab.make_room(0, 1)
        ids = torch.tensor([[row.tokens[-1] if row else self.pad_id] for row in self.rows], device=self.device)
        positions = torch.tensor([[row.position if row else 0] for row in self.rows], device=self.device)
        slab.mask[:, slab.hi] = 1  # every row sees its new token (an empty slot only that one)
        logits, _ = prefill(self.model, ids, slab.mask[:, slab.lo:slab.hi + 1], positions, slab.cache())
        slab.hi += 1
        tokens = self._choose(logits)
        for slot, row in enumerate(self.rows):
            if row is not None:
                row.tokens.append(tokens[slot])
                row.position += 1
                self._finish_if_done(slot)

    def _choose(self, logits: torch.Tensor) -> list[int]:
        """Next token of each row from its last logits: argmax, or a draw at the temperature when sampling."""
        scores = logits[:, -1, :].float()
        if not self.decoding.do_sample:
            return scores.argmax(-1).tolist()
        probs = torch.softmax(scores / self.decoding.temperature, dim=-1)
        return torch.multinomial(probs, num_samples=1).squeeze(1).tolist()

    def _finish_if_done(self, slot: int) -> None:
        row, d = self.rows[slot], self.decoding
        last = row.tokens[-1]
        if last in d.eos or len(row.tokens) >= d.max_new_tokens or \
                (d.stop and any(s in self.text(row.tokens[-d.stop_window:]) for s in d.stop)):
            self.done[row.index] = row.tokens
            self.rows[slot] = None
            if self.slab is not None:
                self.slab.release(slot)

    def _compact(self) -> None:
        """Drop the empty slots once the queue is empty and half the slots are: the tail decodes fewer rows."""
        live = [s for s, row in enumerate(self.rows) if row is not None]
        self.slab.keep(live)
        self.rows = [self.rows[s] for s in live]


def expand(cache: Any, rows: int) -> Any:
    """A new cache holding ``cache``'s single row ``rows`` times (views: the next forward's concatenation copies)."""
    out = DynamicCache()
    for layer in cache.layers:
        copy = DynamicLayer()
        copy.lazy_initialization(layer.keys, layer.values)
        copy.keys, copy.values = layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1)
        out.layers.append(copy)
    return out


def prefill(model: Any, ids: torch.Tensor, mask: torch.Tensor | None, positions: torch.Tensor | None,
            cache: Any, keep: int = 1) -> tuple[torch.Tensor, Any]:
    """(logits of the last ``keep`` positions, the cache) of one forward of ``ids`` after ``cache`` (None: none)."""
    cache = cache if cache is not None else DynamicCache()
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True,
                    logits_to_keep=keep)
    return out.logits, cache
