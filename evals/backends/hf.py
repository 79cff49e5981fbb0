"""The ``hf`` backend: batched greedy generation and log-likelihood over a transformers causal LM.

``load_backend("Qwen/Qwen2.5-0.5B-Instruct")`` or ``load_backend("runs/demo/stages/sft/model")``
gives an ``HFBackend``. Generation is length-sorted, left-padded, greedy, stops at
EOS or the request's stop strings; log-likelihood splits context/continuation the
way lm-eval's ``_encode_pair`` does and prompts longer than the model's context keep their last
tokens as lm-eval's do, so choices and responses agree with lm-eval's HF backend
(tests/evals/test_lm_eval_agreement.py); MMLU's four one-token choices share one forward pass::

    backend.loglikelihood([LoglikelihoodRequest("The capital of France is", " Paris")])  # -> [-0.4]

A new backend (vLLM, an API) is one class with the same methods (see evals.requests.Backend).
"""

from __future__ import annotations

import contextlib
import functools
import json
from typing import Any, Iterator, Mapping, Sequence

import torch

from tunegate.evals.env import other_cpu_load
from tunegate.evals.errors import TunegateError
from tunegate.evals.models import fingerprint_dir, resolve_model_dir
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest

def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


class HFBackend:
    """A transformers causal LM (or a PEFT adapter directory) behind the batched request interface."""

    def __init__(self, model: str, *, device: str | None = None, dtype: str | None = None,
                 batch_size: int | None = None, completion_mode: bool = False, threads: int | None = None,
                 chat_template_kwargs: Mapping[str, Any] | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.name = model
        self.path = resolve_model_dir(model)
        self.device = device or default_device()
        torch_dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32,
                       None: torch.bfloat16 if self.device.startswith("cuda") else torch.float32}[dtype]
        self._fingerprint = fingerprint_dir(self.path)
        adapter = (self.path / "adapter_config.json").is_file()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.path)
            if adapter:
                from peft import AutoPeftModelForCausalLM

                self.model = AutoPeftModelForCausalLM.from_pretrained(self.path, dtype=torch_dtype)
            else:
                self.model = AutoModelForCausalLM.from_pretrained(self.path, dtype=torch_dtype,
                                                                  attn_implementation="sdpa")
        except (OSError, ValueError) as exc:
            raise TunegateError(f"model '{model}': cannot load checkpoint ({str(exc).splitlines()[0]})") from None
        self.model.to(self.device).eval()
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.completion_mode = completion_mode
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.batch_size = batch_size or (32 if self.device == "cpu" else auto_batch_size(self.model))
        if threads is not None:
            self.threads = threads
        self.dtype = str(torch_dtype).removeprefix("torch.")

    # -- identity -------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    @functools.cached_property
    def threads(self) -> int | None:
        """torch intra-op threads while this backend computes (None: torch's own setting).

        Unless given, chosen by ``auto_threads`` at the first computation, not at load, so a fully cached
        run never pays for sampling the machine's load.
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
        return {"model": self.name, "path": str(self.path), "device": self.device, "dtype": self.dtype,
                "batch_size": self.batch_size, "threads": vars(self).get("threads"), "fingerprint": self.fingerprint,
                **({"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else {})}

    @functools.cached_property
    def stop_token_ids(self) -> list[int]:
        """The token ids that end a generation (see ``stop_token_ids``)."""
        return stop_token_ids(self.tokenizer, self.model.generation_config)

    # -- generation -----------------------------------------------------------------------------
    @property
    def max_length(self) -> int:
        """The model's context length, resolved as lm-eval's HF backend does (config, then tokenizer, then 2048)."""
        cfg = getattr(self.model.config, "text_config", None) or self.model.config
        for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
            if getattr(cfg, attr, None) is not None:
                return int(getattr(cfg, attr))
        tok_max = getattr(self.tokenizer, "model_max_length", None)
        return int(tok_max) if tok_max is not None and tok_max < 10 ** 12 else 2048

    def _encode(self, text: str) -> list[int]:
        """Token ids as lm-eval's ``tok_encode``: the tokenizer's special tokens (BOS) unless the text has them."""
        bos = self.tokenizer.bos_token if self.tokenizer.bos_token_id is not None else self.tokenizer.eos_token
        return self.tokenizer(text, add_special_tokens=not (bos and text.startswith(bos)))["input_ids"]

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy (or sampled) continuations, in request order; batched by length."""
        with torch_threads(self.threads):
            return self._generate(requests)

    def _generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        out: list[str | None] = [None] * len(requests)
        encoded = [self._encode(r.prompt) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: (_settings_key(requests[i]), -len(encoded[i])))
        i = 0
        while i < len(order):
            key = _settings_key(requests[order[i]])
            batch = [order[i]]
            while len(batch) < self.batch_size and i + len(batch) < len(order) \
                    and _settings_key(requests[order[i + len(batch)]]) == key:
                batch.append(order[i + len(batch)])
            texts = self._generate_batch([encoded[j] for j in batch], requests[batch[0]])
            for j, text in zip(batch, texts):
                out[j] = text
            i += len(batch)
        return [t or "" for t in out]

    def _generate_batch(self, ids: list[list[int]], req: GenerationRequest) -> list[str]:
        try:
            return self._generate_padded(ids, req)
        except torch.OutOfMemoryError:
            if len(ids) == 1:
                raise
            torch.cuda.empty_cache()
            half = len(ids) // 2
            self.batch_size = max(1, half)
            return self._generate_batch(ids[:half], req) + self._generate_batch(ids[half:], req)

    def _generate_padded(self, ids: list[list[int]], req: GenerationRequest) -> list[str]:
        pad = self.tokenizer.pad_token_id
        room = self.max_length - req.max_new_tokens  # as lm-eval: keep the last (max_length - max_new) prompt tokens
        if room > 0:
            ids = [x[-room:] for x in ids]
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
        seqs = sorted(members, key=len, reverse=True)
        out = [0.0] * len(requests)
        for batch in _token_batches(seqs, self.batch_size, LL_TOKENS_PER_ROW * self.batch_size):
            conts = [[pairs[i][1] for i in members[s]] for s in batch]
            for s, values in zip(batch, self._loglikelihood_batch(batch, conts)):
                for i, v in zip(members[s], values):
                    out[i] = v
        return out

    def _encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        # as lm-eval: trailing spaces of the context move to the continuation; encode whole, then split.
        # Unlike lm-eval's rstrip(), newlines stay: a chat context ends with the template's "<|im_start|>assistant\n",
        # and moving that "\n" would score the template's own newline as part of every choice.
        n_spaces = len(context) - len(context.rstrip(" \t"))
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        if not context:
            prefix = self.tokenizer.eos_token_id if self.tokenizer.bos_token_id is None else self.tokenizer.bos_token_id
            return [prefix], self.tokenizer(continuation, add_special_tokens=False)["input_ids"]
        whole, ctx = self._encode(context + continuation), self._encode(context)
        if len(whole) <= len(ctx):  # e.g. a word-level tokenizer merging "...t9" + "t5" into one unknown word
            raise TunegateError(f"log-likelihood request: continuation {continuation!r} adds no token to its context "
                                f"(...{context[-40:]!r}) with this tokenizer")
        return ctx, whole[len(ctx):]

    def _loglikelihood_batch(self, seqs: list[tuple[int, ...]], conts: list[list[list[int]]]) -> list[list[float]]:
        """One forward over left-padded ``seqs``; per row, the log-likelihood of each continuation that ends it."""
        width = max(len(s) for s in seqs)
        keep = max(len(k) for row in conts for k in row)  # only the last positions are scored
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in seqs], device=self.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=self.device)
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            try:
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                                    logits_to_keep=keep).logits
            except TypeError:  # a model without logits_to_keep
                logits = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids).logits
            logprobs = torch.log_softmax(logits[:, -keep:].float(), dim=-1)
        out = []
        for row, row_conts in enumerate(conts):
            values = []
            for cont in row_conts:
                positions = torch.arange(keep - len(cont), keep, device=self.device)
                values.append(float(logprobs[row, positions, torch.tensor(cont, device=self.device)].sum()))
            out.append(values)
        return out


#: Log-likelihood batches hold at most batch_size * this many (padded) tokens: long prompts go in
#: smaller batches, so the longest rows do not pad a full batch of short ones.
LL_TOKENS_PER_ROW = 256


def _token_batches(seqs: Sequence[Sequence[int]], max_rows: int, max_tokens: int) -> Iterator[list[Any]]:
    """Consecutive batches of length-sorted (longest first) ``seqs``: at most ``max_rows`` rows and
    ``max_tokens`` padded tokens (a batch always takes at least one row)."""
    batch: list[Any] = []
    for seq in seqs:
        if batch and (len(batch) == max_rows or (len(batch) + 1) * len(batch[0]) > max_tokens):
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


def stop_token_ids(tokenizer: Any, generation_config: Any) -> list[int]:
    """The checkpoint's eos ids (generation_config, tokenizer) plus the chat template's end-of-turn token.

    A base model's eos is often not what its chat template ends a turn with (Qwen3-0.6B-Base: eos
    ``<|endoftext|>``, turns end with ``<|im_end|>``); after SFT on that template the model ends its answers
    with ``<|im_end|>``, and generation must stop there rather than run on into a made-up next turn.
    """
    eos = getattr(generation_config, "eos_token_id", None)
    ids = set(eos if isinstance(eos, (list, tuple)) else [] if eos is None else [eos])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    turn_end = end_of_turn_token(tokenizer)
    if turn_end is not None:
        ids.add(turn_end)
    return sorted(ids)


def end_of_turn_token(tokenizer: Any) -> int | None:
    """The added token the chat template writes right after an assistant turn (``<|im_end|>``, ``<|eot_id|>``)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    probe = "tunegate-end-of-turn-probe"
    try:
        text = tokenizer.apply_chat_template([{"role": "user", "content": "Hi."}, {"role": "assistant", "content": probe}],
                                             tokenize=False)
    except Exception:  # noqa: BLE001 - a template that cannot render this pair has no turn end to find
        return None
    if not isinstance(text, str) or probe not in text:
        return None
    ids = tokenizer(text.split(probe, 1)[1], add_special_tokens=False)["input_ids"]
    return ids[0] if ids and ids[0] in tokenizer.added_tokens_decoder else None


def _settings_key(r: GenerationRequest) -> str:
    return json.dumps([r.max_new_tokens, list(r.stop), r.do_sample, r.temperature])


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut ``text`` at the first occurrence of any stop string (as lm-eval does)."""
    cut = len(text)
    for s in stop:
        k = text.find(s)
        if s and k != -1:
            cut = min(cut, k)
    return text[:cut]


#: Below this many parameters a CPU model runs on one intra-op thread when other processes keep the
#: cores busy: its matrices (e.g. 128 x 512 for the organism) are small, and on busy cores the threads'
#: barriers make every step wait for a descheduled peer (measured 5-20x slower with 2 threads on 2 busy
#: cores). On idle cores torch's own count is faster (bench/eval_speed.py's organism workload, ``--subjects
#: astronomy,high_school_european_history,abstract_algebra --per-subject 20 --gsm8k-n 40``, on 2 idle cores:
#: 1.4-1.8 s on two threads, 2.5-2.9 s on one).
SMALL_MODEL_PARAMS = 10_000_000
#: Cores kept busy by other processes (evals.env.other_cpu_load) from which the cores count as busy.
BUSY_CORES = 0.5


def auto_threads(model: torch.nn.Module, device: str) -> int | None:
    """1 for a small model on CPU cores that other processes keep busy, else None (torch's own setting)."""
    if not str(device).startswith("cpu") or sum(p.numel() for p in model.parameters()) >= SMALL_MODEL_PARAMS:
        return None
    load = other_cpu_load()
    return 1 if load is not None and load >= BUSY_CORES else None


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
