"""The ``hf`` backend: batched greedy generation and log-likelihood over a transformers causal LM.

``load_backend("Qwen/Qwen2.5-0.5B-Instruct")`` or ``load_backend("runs/demo/stages/sft/model")``
gives an ``HFBackend``. Generation is length-sorted, left-padded, greedy, stops at
EOS or the request's stop strings; log-likelihood splits context/continuation the
way lm-eval's ``_encode_pair`` does and prompts longer than the model's context keep their last
tokens as lm-eval's do, so choices and responses agree with lm-eval's HF backend
(tests/evals/test_lm_eval_agreement.py); MMLU's four one-token choices share one forward pass::

    backend.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])  # -> [-0.4]

The other backends (``vllm``, ``openai``) are classes with the same methods (see evals.requests.Backend).
"""

from __future__ import annotations

import contextlib
import functools
import json
from importlib.metadata import version as _version
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch

from tunegate.core.errors import TunegateError
from tunegate.core.files import sha256_file
from tunegate.evals.models import fingerprint_dir, loading, resolve_model_dir
from tunegate.evals.backends._continuous import PREFIX_COST, Decoding, expand, generate_tokens, prefill, supports
from tunegate.evals.backends._tokens import GREEDY, TokenizedPrompts, shared_prefixes, stop_token_ids
from tunegate.evals.requests import (
    GenerationRequest,
    LoglikelihoodRequest,
    TokenRankRequest,
    TokenRanks,
    truncate_at_stop,
)

def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def check_device(device: str) -> str:
    """``device`` when this machine has it; otherwise one TunegateError naming ``--device`` (before any load)."""
    try:
        kind = torch.device(device)
    except (RuntimeError, TypeError):
        raise TunegateError(f"--device '{device}': not a torch device (cpu, cuda, cuda:1, mps)") from None
    if kind.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise TunegateError(f"--device {device}: CUDA is not available on this machine (torch "
                                f"{torch.__version__}); use --device cpu")
        if kind.index is not None and kind.index >= count:
            raise TunegateError(f"--device {device}: this machine has {count} CUDA device(s), "
                                f"cuda:0 to cuda:{count - 1}")
    if kind.type == "mps" and not torch.backends.mps.is_available():
        raise TunegateError(f"--device {device}: MPS is not available on this machine; use --device cpu")
    return device


def torch_dtype(dtype: str | None, device: str) -> torch.dtype:
    """The torch dtype named by ``--dtype`` (default: bfloat16 on CUDA, float32 elsewhere)."""
    if dtype is None:
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    if dtype not in DTYPES:
        raise TunegateError(f"--dtype '{dtype}': not one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


class HFBackend(TokenizedPrompts):
    """A transformers causal LM (or a PEFT adapter directory) behind the batched request interface."""

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, completion_mode: bool = False, threads: int | None = None,
                 chat_template_kwargs: Mapping[str, Any] | None = None, trust_remote_code: bool = False,
                 chat_template: str | None = None) -> None:
        from transformers import AutoTokenizer

        self.name = model
        self.device = check_device(device or default_device())
        self._torch_dtype = torch_dtype(dtype, self.device)
        self.path = resolve_model_dir(model)
        self._fingerprint = fingerprint_dir(self.path)
        self.adapter = (self.path / "adapter_config.json").is_file()
        self.trust_remote_code = bool(trust_remote_code)
        with loading(model):
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
        self.template_override = self._template_for_base(chat_template)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.completion_mode = completion_mode
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self._batch_size = batch_size or (32 if self.device == "cpu" else None)  # None: from free GPU memory
        if threads is not None:
            self.threads = threads
        self.dtype = str(self._torch_dtype).removeprefix("torch.")

    @functools.cached_property
    def model(self) -> torch.nn.Module:
        """The weights, loaded at first use: an evaluation whose every response is cached never loads them."""
        from transformers import AutoModelForCausalLM

        remote = {"trust_remote_code": self.trust_remote_code}  # explicit: never transformers' interactive prompt
        with loading(self.name):
            if self.adapter:
                from peft import AutoPeftModelForCausalLM

                model = AutoPeftModelForCausalLM.from_pretrained(self.path, dtype=self._torch_dtype, **remote)
            else:
                model = AutoModelForCausalLM.from_pretrained(self.path, dtype=self._torch_dtype,
                                                             attn_implementation="sdpa", **remote)
        return model.to(self.device).eval()

    @property
    def batch_size(self) -> int:
        """Generation batch size: given, 32 on the CPU, or from free GPU memory once the weights are loaded."""
        if self._batch_size is None:
            self._batch_size = auto_batch_size(self.model)
        return self._batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self._batch_size = value

    def _template_for_base(self, chat_template: str | None) -> str | None:
        """Give a checkpoint without a chat template the one in the file ``chat_template``; the file's sha256
        (first 16 hex digits), or None when nothing was given or the checkpoint has its own (that one wins)."""
        if not chat_template or self.has_chat_template():
            return None
        path = Path(chat_template).expanduser()
        if not path.is_file():
            raise TunegateError(f"chat_template: file '{chat_template}' not found")
        self.tokenizer.chat_template = path.read_text(encoding="utf-8")
        return sha256_file(path)[:16]

    # -- identity -------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @property
    def model_config(self) -> Any:
        return self.model.config

    def cache_identity(self) -> dict[str, Any]:
        """What makes this backend's responses what they are (the response cache's key folds it in).

        The checkpoint by content (weights, tokenizer, chat template, generation_config.json: the
        fingerprint), the dtype and device type it computes in, and the versions of the libraries whose
        code computes it: ``{"backend": "hf", "model": "3f2a9c1b0d4e5f67", "dtype": "float32",
        "device": "cpu", "torch": "2.13.0", "transformers": "5.24.0", "greedy": "argmax"}`` (``GREEDY``: the
        decoding rule, shared with the vllm backend).
        """
        import transformers

        return {"backend": "hf", "model": self.fingerprint, "dtype": self.dtype, "greedy": GREEDY,
                "device": torch.device(self.device).type, "torch": torch.__version__.split("+")[0],
                "transformers": transformers.__version__} | ({"peft": _version("peft")} if self.adapter else {}) \
            | ({"trust_remote_code": True} if self.trust_remote_code else {}) \
            | ({"chat_template": self.template_override} if self.template_override else {})

    @functools.cached_property
    def threads(self) -> int | None:
        """torch intra-op threads while this backend computes (None: torch's own setting).

        Unless given, chosen by ``auto_threads`` (one thread for a small CPU model).
        """
        return auto_threads(self.model, self.device)

    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not self.has_chat_template():
            raise TunegateError(
                f"model '{self.name}': tokenizer has no chat template (no {self.path / 'chat_template.jinja'} "
                f"and no field 'chat_template' in tokenizer_config.json); use completion mode (--completion-mode) "
                f"to send raw prompts")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                                  **self.chat_template_kwargs)

    def info(self) -> dict[str, Any]:
        return {"backend": "hf", "model": self.name, "path": str(self.path), "device": self.device, "dtype": self.dtype,
                "batch_size": self._batch_size, "threads": vars(self).get("threads"), "fingerprint": self.fingerprint,
                "trust_remote_code": self.trust_remote_code,
                **({"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else {}),
                **({"chat_template": self.template_override} if self.template_override else {})}

    @functools.cached_property
    def stop_token_ids(self) -> list[int]:
        """The token ids that end a generation (see ``stop_token_ids``)."""
        return stop_token_ids(self.tokenizer, self.model.generation_config.eos_token_id)

    # -- generation -----------------------------------------------------------------------------
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy (or sampled) continuations, in request order; batched by length."""
        with torch_threads(self.threads):
            return self._generate(requests)

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Requests with the same settings decode together: continuously batched where the model allows it
        (``_continuous``), else in length-sorted static batches through ``model.generate``."""
        out: list[str] = [""] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(_settings_key(r), []).append(i)
        for indices in groups.values():
            req = requests[indices[0]]
            prompts = [self._prompt_window(requests[i].prompt, req.max_new_tokens) for i in indices]
            run = self._generate_continuous if self.continuous else self._generate_static
            for i, text in zip(indices, run(prompts, req)):
                out[i] = text
        return out

    @functools.cached_property
    def continuous(self) -> bool:
        """Whether this model decodes by continuous batching (see ``_continuous.supports``)."""
        return supports(self.model)

    def _generate_continuous(self, prompts: list[list[int]], req: GenerationRequest) -> list[str]:
        """Continuous batching; out of memory, the batch size halves and the unfinished prompts run again."""
        decoding = Decoding(max_new_tokens=req.max_new_tokens, eos=tuple(self.stop_token_ids), stop=tuple(req.stop),
                            do_sample=req.do_sample, temperature=req.temperature or 1.0)
        done: dict[int, list[int]] = {}
        while True:
            try:
                generate_tokens(self.model, prompts, decoding, batch_size=self.batch_size, text=self._text,
                                pad_id=self.tokenizer.pad_token_id, done=done)
                break
            except RuntimeError as exc:  # torch.OutOfMemoryError is one
                self._halve_batch(exc)
        return [truncate_at_stop(self._text(done[i]), req.stop) for i in range(len(prompts))]

    def _text(self, tokens: list[int]) -> str:
        return self.tokenizer.decode(tokens, skip_special_tokens=True)

    def _halve_batch(self, exc: RuntimeError) -> None:
        """Halve the batch size after an out-of-memory error (accelerate decides what is one and frees the
        cache); any other error, or one at batch size 1, is raised again."""
        from accelerate.utils.memory import clear_device_cache, should_reduce_batch_size

        if self.batch_size == 1 or not should_reduce_batch_size(exc):
            raise exc
        clear_device_cache()
        self.batch_size = max(1, self.batch_size // 2)

    def _generate_static(self, prompts: list[list[int]], req: GenerationRequest) -> list[str]:
        """Length-sorted static batches through ``model.generate`` (a model the continuous path does not take)."""
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        out: list[str] = [""] * len(prompts)
        i = 0
        while i < len(order):
            batch = order[i:i + self.batch_size]
            try:
                texts = self._generate_padded([prompts[j] for j in batch], req)
            except RuntimeError as exc:
                self._halve_batch(exc)
                continue
            for j, text in zip(batch, texts):
                out[j] = text
            i += len(batch)
        return out

    def _generate_padded(self, ids: list[list[int]], req: GenerationRequest) -> list[str]:
        pad = self.tokenizer.pad_token_id
        width = max(len(x) for x in ids)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": req.max_new_tokens, "pad_token_id": pad,
                                  "eos_token_id": self.stop_token_ids, **decoding_kwargs(req)}
        if req.stop:
            kwargs.update(stop_strings=list(req.stop), tokenizer=self.tokenizer)
        with torch.inference_mode():
            gen = self.model.generate(input_ids=input_ids, attention_mask=mask, **kwargs)
        texts = self.tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
        return [truncate_at_stop(t, req.stop) for t in texts]

    # -- log-likelihood -------------------------------------------------------------------------
    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Sum of log-probabilities of each continuation given its context.

        As lm-eval: (context + continuation) keeps its last ``max_length + 1`` tokens, and requests whose
        model input is the same (MMLU's " A".." D" after one prompt) share one forward pass.
        """
        with torch_threads(self.threads):
            return self._loglikelihood(requests)

    def _loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        pairs = [self._encode_pair(r.context, r.continuation) for r in requests]
        limit = self.max_length + 1
        inputs = [tuple((c + k)[-limit:][:-1]) for c, k in pairs]
        members: dict[tuple[int, ...], list[int]] = {}
        for i, seq in enumerate(inputs):
            members.setdefault(seq, []).append(i)
        scored = {s: max(len(pairs[i][1]) for i in members[s]) for s in members}  # positions each row scores
        out = [0.0] * len(requests)
        for prefix, seqs in self._prefix_groups(list(members), scored):
            skip = prefix[0] if prefix else 0
            for batch in _token_batches(seqs, self.batch_size, LL_TOKENS_PER_ROW * self.batch_size, skip):
                conts = [[pairs[i][1] for i in members[s]] for s in batch]
                for s, values in zip(batch, self._loglikelihood_batch(batch, conts, prefix)):
                    for i, v in zip(members[s], values):
                        out[i] = v
        return out

    def _prefix_groups(self, seqs: list[tuple[int, ...]], scored: Mapping[tuple[int, ...], int]
                       ) -> Iterator[tuple[tuple[int, Any] | None, list[tuple[int, ...]]]]:
        """``seqs`` in groups, longest first, each with the (length, cache) of the token prefix its rows share
        (computed here, once) or None: the rows' last ``scored[s]`` positions stay out of the prefix."""
        if not self.continuous:  # a model whose cache cannot be shared this way: one group, no prefix
            yield None, sorted(seqs, key=len, reverse=True)
            return
        for length, idx in shared_prefixes(seqs, [len(s) - scored[s] for s in seqs], PREFIX_COST):
            group = sorted((seqs[i] for i in idx), key=len, reverse=True)
            if not length:
                yield None, group
                continue
            ids = torch.tensor([group[0][:length]], device=self.device)
            yield (length, prefill(self.model, ids, None, None, None)[1]), group

    def _last_logits(self, seqs: list[tuple[int, ...]], keep: int, prefix: tuple[int, Any] | None = None
                     ) -> torch.Tensor:
        """One forward over left-padded ``seqs`` (after their shared ``prefix``: its length and cache): float logits
        of the last ``keep`` positions of each row (only those go through the output layer, where the model takes
        ``logits_to_keep``)."""
        skip = prefix[0] if prefix else 0
        rows = [s[skip:] for s in seqs]
        width = max(len(s) for s in rows)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in rows], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in rows], device=self.device)
        position_ids = (skip + mask.cumsum(-1) - 1).clamp(min=0)
        if prefix is not None:
            mask = torch.cat([mask.new_ones((len(rows), skip)), mask], dim=1)
            return prefill(self.model, input_ids, mask, position_ids, expand(prefix[1], len(rows)), keep)[0].float()
        with torch.inference_mode():
            try:
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                                    logits_to_keep=keep).logits
            except TypeError:  # a model without logits_to_keep
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids).logits
        return logits[:, -keep:].float()

    def _loglikelihood_batch(self, seqs: list[tuple[int, ...]], conts: list[list[list[int]]],
                             prefix: tuple[int, Any] | None = None) -> list[list[float]]:
        """One forward over left-padded ``seqs``; per row, the log-likelihood of each continuation that ends it."""
        keep = max(len(k) for row in conts for k in row)  # only the last positions are scored
        logprobs = torch.log_softmax(self._last_logits(seqs, keep, prefix), dim=-1)
        out = []
        for row, row_conts in enumerate(conts):
            values = []
            for cont in row_conts:
                positions = torch.arange(keep - len(cont), keep, device=self.device)
                values.append(float(logprobs[row, positions, torch.tensor(cont, device=self.device)].sum()))
            out.append(values)
        return out

    # -- token ranks (an optional capability: the token-shift analysis) ---------------------------
    def token_ranks(self, requests: Sequence[TokenRankRequest]) -> list[TokenRanks]:
        """Each continuation teacher-forced after its context: the rank of every token under this model.

        Rank 1 is this model's greedy choice (ties count in the token's favour). Context and
        continuation are tokenized apart (the continuation as the tokens a generation would give), the
        end-of-turn token is appended where the continuation stopped short of its budget, and a
        sequence longer than the model's context keeps its last tokens, as log-likelihood does.
        """
        with torch_threads(self.threads):
            return self._token_ranks(requests)

    def _token_ranks(self, requests: Sequence[TokenRankRequest]) -> list[TokenRanks]:
        rows: list[tuple[list[int], list[int]]] = []
        for r in requests:
            cont = self.tokenizer(r.continuation, add_special_tokens=False)["input_ids"] if r.continuation else []
            if r.max_new_tokens is not None and len(cont) < r.max_new_tokens:
                cont = cont + [self.end_of_turn_id]
            rows.append((self._encode(r.context), cont))
        limit = self.max_length + 1
        seqs = {i: tuple((c + k)[-limit:][:-1]) for i, (c, k) in enumerate(rows) if rows[i][1]}
        out = [TokenRanks((), (), ())] * len(requests)
        order = sorted(seqs, key=lambda i: len(seqs[i]), reverse=True)
        for batch in _token_batches([seqs[i] for i in order], self.batch_size, LL_TOKENS_PER_ROW * self.batch_size):
            idx, order = order[:len(batch)], order[len(batch):]
            conts = [rows[i][1][-len(seqs[i]):] for i in idx]
            for i, value in zip(idx, self._token_ranks_batch(batch, conts)):
                out[i] = value
        return out

    def _token_ranks_batch(self, seqs: list[tuple[int, ...]], conts: list[list[int]]) -> list[TokenRanks]:
        keep = max(len(k) for k in conts)
        logits = self._last_logits(seqs, keep)
        out = []
        for row, cont in enumerate(conts):
            scores = logits[row, keep - len(cont):]
            target = torch.tensor(cont, device=self.device)
            chosen = scores.gather(-1, target[:, None])
            ranks = (scores > chosen).sum(-1) + 1
            out.append(TokenRanks(tokens=tuple(self.tokenizer.decode([t]) for t in cont),
                                  ranks=tuple(int(r) for r in ranks.tolist()),
                                  top=tuple(self.tokenizer.decode([t]) for t in scores.argmax(-1).tolist())))
        return out

    @functools.cached_property
    def end_of_turn_id(self) -> int:
        """The token that ends a response: the chat template's end of an assistant turn (``<|im_end|>``
        in ChatML), or the tokenizer's EOS in completion mode or without a template."""
        eos = self.tokenizer.eos_token_id
        if self.completion_mode or not self.has_chat_template():
            return int(eos)
        marker = "\u2063tunegate\u2063"
        text = self.tokenizer.apply_chat_template([{"role": "user", "content": "x"},
                                                  {"role": "assistant", "content": marker}], tokenize=False)
        after = text.split(marker, 1)[1] if marker in text else ""
        ids = self.tokenizer(after, add_special_tokens=False)["input_ids"] if after.strip() else []
        return int(ids[0]) if ids else int(eos)

    @property
    def end_of_turn_token(self) -> str:
        return self.tokenizer.decode([self.end_of_turn_id])

    def seed(self, value: int) -> None:
        """Seed the random numbers that sampled generation draws (torch's, on every device)."""
        torch.manual_seed(value)


#: Log-likelihood batches hold at most batch_size * this many (padded) tokens: long prompts go in
#: smaller batches, so the longest rows do not pad a full batch of short ones.
LL_TOKENS_PER_ROW = 256


def _token_batches(seqs: Sequence[Sequence[int]], max_rows: int, max_tokens: int, skip: int = 0) -> Iterator[list[Any]]:
    """Consecutive batches of length-sorted (longest first) ``seqs``: at most ``max_rows`` rows and
    ``max_tokens`` padded tokens computed (a row's first ``skip`` come from a shared prefix; a batch always takes
    at least one row)."""
    batch: list[Any] = []
    for seq in seqs:
        if batch and (len(batch) == max_rows or (len(batch) + 1) * (len(batch[0]) - skip) > max_tokens):
            yield batch
            batch = []
        batch.append(seq)
    if batch:
        yield batch


def decoding_kwargs(req: GenerationRequest) -> dict[str, Any]:
    """``generate`` settings that make decoding exactly what the request says: greedy (or plain sampling at its
    temperature), whatever the checkpoint's generation_config.json suggests (Qwen2.5-Instruct's asks for
    sampling with repetition_penalty 1.1, which ``generate`` would otherwise apply to greedy decoding too)."""
    neutral = {"num_beams": 1, "top_p": None, "top_k": None, "min_p": None, "typical_p": None,
               "repetition_penalty": None, "no_repeat_ngram_size": None, "min_new_tokens": None}
    if req.do_sample:
        return {**neutral, "do_sample": True, "temperature": req.temperature or 1.0}
    return {**neutral, "do_sample": False, "temperature": None}


def _settings_key(r: GenerationRequest) -> str:
    return json.dumps([r.max_new_tokens, list(r.stop), r.do_sample, r.temperature])


#: Below this many parameters a CPU model runs on one intra-op thread, whatever the machine's load: its matrices
#: (e.g. 128 x 512 for the organism) are small, so on busy cores the threads' barriers make every step wait for a
#: descheduled peer (measured 5-20x slower with 2 threads on 2 busy cores), and the thread count changes how
#: reductions are split, so a count that followed the load made the demo's trained model (and its verdicts)
#: depend on what else ran on the machine (DPO identity adherence 0.8 on one thread, 0.9 on two, same seed).
#: On idle cores two threads are faster (bench/eval_speed.py's organism workload: 1.4-1.8 s vs 2.5-2.9 s).
#: SmolLM2-135M-Instruct (135M parameters) is below the line too: on 2 cores busy with other jobs (load average
#: 7.9; bench/threads.py, 8 GSM8K prompts x 64 tokens and 32 MMLU items) two threads cost 97.1 vs 13.4 CPU s and
#: 347 vs 93 wall s for the generation, 50.1 vs 6.1 CPU s and 138 vs 42 wall s for the log-likelihoods: slower on
#: the wall clock as well as in CPU time. Larger models (gemma-3-270m, Qwen2.5-0.5B) are not measured and keep
#: torch's own count.
SMALL_MODEL_PARAMS = 200_000_000


def auto_threads(model: torch.nn.Module, device: str) -> int | None:
    """1 for a small model on the CPU (the same results on an idle or a busy machine), else None (torch's own)."""
    if not str(device).startswith("cpu") or sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        return None
    return 1


@contextlib.contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and restore the previous count (None: leave it)."""
    if not n:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def auto_batch_size(model: torch.nn.Module) -> int:
    """A generation batch size from free GPU memory: KV cache budget over per-sequence cost."""
    if not torch.cuda.is_available():
        return 32
    free, _ = torch.cuda.mem_get_info()
    cfg = model.config
    layers = getattr(cfg, "num_hidden_layers", 24)
    kv_heads = getattr(cfg, "num_key_value_heads", None) or getattr(cfg, "num_attention_heads", 16)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    per_seq = 2 * layers * kv_heads * head_dim * 2 * 2048  # K and V, bf16, 2k tokens
    return int(max(1, min(256, (free * 0.5) // per_seq)))
