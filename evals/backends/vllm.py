"""The ``vllm`` backend: vLLM's offline engine (``vllm.LLM``) in this process, on CUDA GPUs.

Prompts are tokenized here by the same rules as the ``hf`` backend (lm-eval's: ``evals.backends._tokens``)
and go to vLLM as token ids (``TokensPrompt``), so both backends see the same tokens. Generation is
greedy unless a suite samples, by the hf backend's rule (``_tokens.GREEDY``): plain argmax (temperature 0,
repetition_penalty 1.0 whatever generation_config.json says), stopping at the checkpoint's eos ids, the chat
template's end-of-turn token and the suite's stop strings.
Log-likelihood asks for ``prompt_logprobs=1`` (the prompt tokens' own log-probs always come back) and
sums the continuation's, as lm-eval's vLLM backend does. ``data_parallel_size`` replicas (each on its
own ``tensor_parallel_size`` GPUs) share the requests, interleaved. vLLM is imported only here, when
this backend is chosen; without it, or without a GPU, one line says which::

    sampling_kwargs(GenerationRequest("Question: 2+2?\\nAnswer:", max_new_tokens=64, stop=("Question:",)),
                    {"eos_token_id": [0, 2], "top_k": 20, "top_p": 0.8})
    # -> {"max_tokens": 64, "temperature": 0.0, "skip_special_tokens": True, "repetition_penalty": 1.0,
    #     "stop": ["Question:"], "stop_token_ids": [0, 2]}           # then vllm.SamplingParams(**...)
"""

from __future__ import annotations

import importlib.util
import os
from importlib.metadata import version as _version
from typing import Any, Mapping, Sequence

from tunegate.evals.backends._tokens import GREEDY, TokenizedPrompts, stop_token_ids
from tunegate.core.errors import TunegateError
from tunegate.evals.models import fingerprint_dir, loading, resolve_model_dir
from tunegate.evals.requests import GenerationRequest, LoglikelihoodRequest, truncate_at_stop

#: SamplingParams of a log-likelihood request (lm-eval's): one token out, the prompt's log-probs back.
LOGLIKELIHOOD_SAMPLING = {"temperature": 0.0, "max_tokens": 1, "prompt_logprobs": 1, "detokenize": False}


def missing_requirements(has_vllm: bool, has_gpu: bool) -> str | None:
    """One line naming what the vllm backend lacks here, or None."""
    if has_vllm and has_gpu:
        return None
    lacks = [("vLLM is not installed (pip install 'tunegate[vllm]')" if not has_vllm else ""),
             ("no CUDA GPU is visible (vLLM runs on GPUs; on CPU use --backend hf)" if not has_gpu else "")]
    return "backend 'vllm': " + " and ".join(x for x in lacks if x)


def require_vllm() -> None:
    import torch

    problem = missing_requirements(importlib.util.find_spec("vllm") is not None, torch.cuda.is_available())
    if problem:
        raise TunegateError(problem)


def generation_defaults(path: Any, tokenizer: Any = None, trust_remote_code: bool = False) -> dict[str, Any]:
    """The generation settings taken from the checkpoint: the ids that stop a generation (generation_config's eos,
    plus, given the ``tokenizer``, its eos and the chat template's end of turn: ``_tokens.stop_token_ids``) and
    top_k/top_p for sampled suites. ``{"eos_token_id": [0, 2], "top_k": None, "top_p": None}``; its
    repetition_penalty is not taken (``_tokens.GREEDY``)."""
    from transformers import GenerationConfig

    try:
        cfg = GenerationConfig.from_pretrained(path).to_dict()  # plain JSON: no code
    except OSError:  # no generation_config.json: generate falls back to the model config's eos
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        cfg = {"eos_token_id": getattr(config, "eos_token_id", None)}
    out = {k: cfg.get(k) for k in ("eos_token_id", "top_k", "top_p")}
    if tokenizer is not None:
        out["eos_token_id"] = stop_token_ids(tokenizer, out["eos_token_id"])
    return out


def sampling_kwargs(request: GenerationRequest, generation: Mapping[str, Any]) -> dict[str, Any]:
    """``vllm.SamplingParams`` keyword arguments for one generation request (see the module docstring)."""
    kw: dict[str, Any] = {"max_tokens": request.max_new_tokens,
                          "temperature": float(request.temperature or 1.0) if request.do_sample else 0.0,
                          "skip_special_tokens": True, "repetition_penalty": 1.0}  # as hf's generate (GREEDY)
    if request.stop:
        kw["stop"] = list(request.stop)
    eos = generation.get("eos_token_id")
    if eos is not None:
        kw["stop_token_ids"] = [int(eos)] if isinstance(eos, int) else [int(e) for e in eos]
    if request.do_sample:  # generate's sampling defaults: top_k 50, top_p 1 unless the config says otherwise
        kw["top_k"] = int(generation.get("top_k") or 50)
        kw["top_p"] = float(generation.get("top_p") or 1.0)
    return kw


def continuation_logprob(prompt_logprobs: Sequence[Mapping[int, Any] | None], token_ids: Sequence[int],
                         n_continuation: int) -> float:
    """Sum of the last ``n_continuation`` prompt tokens' log-probs from vLLM's ``RequestOutput.prompt_logprobs``
    (one ``{token_id: Logprob}`` per prompt position, None at the first)::

        continuation_logprob([None, {17: Logprob(-2.3)}, {5: Logprob(-0.4), 9: Logprob(-0.2)}], [3, 17, 5], 1)
        # -> -0.4
    """
    total = 0.0
    for pos in range(len(token_ids) - n_continuation, len(token_ids)):
        entry = prompt_logprobs[pos]
        if not entry or token_ids[pos] not in entry:
            raise TunegateError(f"backend 'vllm': no prompt log-probability for token {pos} of the request")
        value = entry[token_ids[pos]]
        total += float(getattr(value, "logprob", value))
    return total


Batch = list[tuple[list[int], dict[str, Any], int]]


def generation_batch(tokens: TokenizedPrompts, requests: Sequence[GenerationRequest],
                     generation: Mapping[str, Any]) -> Batch:
    """(prompt ids, SamplingParams kwargs, 0) per request: the prompt keeps its last (max_length - max_new_tokens)
    tokens, as the hf backend's (and lm-eval's)."""
    return [(tokens._prompt_window(r.prompt, r.max_new_tokens), sampling_kwargs(r, generation), 0) for r in requests]


def loglikelihood_batch(tokens: TokenizedPrompts, requests: Sequence[LoglikelihoodRequest]) -> Batch:
    """(context + continuation ids, LOGLIKELIHOOD_SAMPLING, continuation length) per request; the ids keep their
    last max_length tokens (lm-eval's vLLM rule: the engine's context is max_length)."""
    batch = []
    for r in requests:
        ctx, cont = tokens._encode_pair(r.context, r.continuation)
        batch.append(((ctx + cont)[-tokens.max_length:], dict(LOGLIKELIHOOD_SAMPLING), len(cont)))
    return batch


def run_batch(llm: Any, op: str, batch: Batch) -> list[Any]:
    """Run ``batch`` of (token ids, SamplingParams kwargs, continuation length) on ``llm``; plain results:
    texts for ``"generate"``, continuation log-likelihoods for ``"loglikelihood"``."""
    from vllm import SamplingParams, TokensPrompt

    outputs = llm.generate([TokensPrompt(prompt_token_ids=ids) for ids, _, _ in batch],
                           sampling_params=[SamplingParams(**kw) for _, kw, _ in batch], use_tqdm=False)
    if op == "generate":
        return [out.outputs[0].text for out in outputs]
    return [continuation_logprob(out.prompt_logprobs, ids, n) for out, (ids, _, n) in zip(outputs, batch)]


def _replica_main(conn: Any, gpus: str, llm_kwargs: dict[str, Any]) -> None:
    """One data-parallel replica: its own GPUs, its own engine, batches in and plain results out."""
    os.environ["CUDA_VISIBLE_DEVICES"] = gpus
    from vllm import LLM

    try:
        llm = LLM(**llm_kwargs)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
        return
    conn.send(("ready", None))
    while (message := conn.recv()) is not None:
        op, batch = message
        try:
            conn.send(("ok", run_batch(llm, op, batch)))
        except Exception as exc:  # noqa: BLE001
            conn.send(("error", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))


class _Replicas:
    """``n`` engine processes, each on ``tp`` GPUs of CUDA_VISIBLE_DEVICES; requests are dealt out interleaved
    (so long and short ones spread evenly) and gathered back in order."""

    def __init__(self, n: int, tp: int, llm_kwargs: dict[str, Any]) -> None:
        import multiprocessing

        import torch

        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        gpus = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
        if len(gpus) < n * tp:
            raise TunegateError(f"--data-parallel-size {n} x --tensor-parallel-size {tp} needs {n * tp} GPUs, "
                                f"{len(gpus)} visible")
        ctx = multiprocessing.get_context("spawn")
        self.conns, self.procs = [], []
        for i in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_replica_main, args=(child, ",".join(gpus[i * tp:(i + 1) * tp]), llm_kwargs),
                               daemon=True)
            proc.start()
            self.conns.append(parent)
            self.procs.append(proc)
        for conn in self.conns:
            self._answer(conn)

    @staticmethod
    def _answer(conn: Any) -> Any:
        status, value = conn.recv()
        if status == "error":
            raise TunegateError(f"backend 'vllm' replica: {value}")
        return value

    def run(self, op: str, batch: Batch) -> list[Any]:
        n = len(self.conns)
        for i, conn in enumerate(self.conns):
            conn.send((op, batch[i::n]))
        shards = [self._answer(conn) for conn in self.conns]
        out: list[Any] = [None] * len(batch)
        for i, shard in enumerate(shards):
            out[i::n] = shard
        return out

    def close(self) -> None:
        for conn in self.conns:
            conn.send(None)
        for proc in self.procs:
            proc.join(timeout=30)


class VLLMBackend(TokenizedPrompts):
    """A checkpoint on vLLM's offline engine, behind the batched request interface."""

    def __init__(self, model: str, *, dtype: str | None = None, tensor_parallel_size: int | None = None,
                 data_parallel_size: int | None = None, gpu_memory_utilization: float | None = None,
                 completion_mode: bool = False, chat_template_kwargs: Mapping[str, Any] | None = None,
                 trust_remote_code: bool = False) -> None:
        require_vllm()
        from transformers import AutoConfig, AutoTokenizer

        self.name = model
        self.path = resolve_model_dir(model)
        if (self.path / "adapter_config.json").is_file():
            raise TunegateError(f"model '{model}': a PEFT adapter directory; backend 'vllm' needs merged weights "
                                f"(merge_and_unload) or --backend hf")
        self._fingerprint = fingerprint_dir(self.path)
        self.trust_remote_code = bool(trust_remote_code)  # explicit: never transformers' interactive prompt
        with loading(model):
            self.tokenizer = AutoTokenizer.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
            self.model_config = AutoConfig.from_pretrained(self.path, trust_remote_code=self.trust_remote_code)
            self.generation = generation_defaults(self.path, self.tokenizer, self.trust_remote_code)
        self.completion_mode = completion_mode
        self.chat_template_kwargs = dict(chat_template_kwargs or {})
        self.dtype = dtype or "auto"
        self.tensor_parallel_size = int(tensor_parallel_size or 1)
        self.data_parallel_size = int(data_parallel_size or 1)
        llm_kwargs = {"model": str(self.path), "dtype": self.dtype, "tensor_parallel_size": self.tensor_parallel_size,
                      "gpu_memory_utilization": gpu_memory_utilization or 0.9, "max_model_len": self.max_length,
                      "seed": 0, "trust_remote_code": self.trust_remote_code}
        if self.data_parallel_size > 1:
            self._replicas: _Replicas | None = _Replicas(self.data_parallel_size, self.tensor_parallel_size, llm_kwargs)
            self.llm = None
        else:
            from vllm import LLM

            self._replicas = None
            self.llm = LLM(**llm_kwargs)

    # -- identity -------------------------------------------------------------------------------
    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def cache_identity(self) -> dict[str, Any]:
        """``{"backend": "vllm", "model": "3f2a9c1b0d4e5f67", "dtype": "auto", "device": "cuda", "vllm": "0.11.0",
        "tensor_parallel_size": 1, "greedy": "argmax"}`` (``GREEDY``: the decoding rule); tensor parallelism changes the reduction order of the sums, so it is
        part of the identity; data parallelism (whole replicas) is not."""
        return {"backend": "vllm", "model": self.fingerprint, "dtype": self.dtype, "device": "cuda",
                "vllm": _version("vllm"), "tensor_parallel_size": self.tensor_parallel_size, "greedy": GREEDY} \
            | ({"trust_remote_code": True} if self.trust_remote_code else {})

    def info(self) -> dict[str, Any]:
        return {"backend": "vllm", "model": self.name, "path": str(self.path), "device": "cuda", "dtype": self.dtype,
                "tensor_parallel_size": self.tensor_parallel_size, "data_parallel_size": self.data_parallel_size,
                "fingerprint": self.fingerprint, "trust_remote_code": self.trust_remote_code,
                **({"chat_template_kwargs": self.chat_template_kwargs} if self.chat_template_kwargs else {})}

    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        if not self.has_chat_template():
            raise TunegateError(f"model '{self.name}': tokenizer has no chat template; use completion mode "
                                f"(--completion-mode) to send raw prompts")
        return self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True,
                                                  **self.chat_template_kwargs)

    # -- requests -------------------------------------------------------------------------------
    def _run(self, op: str, batch: Batch) -> list[Any]:
        if self._replicas is not None:
            return self._replicas.run(op, batch)
        return run_batch(self.llm, op, batch)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Greedy (or sampled) continuations in request order; vLLM schedules the batch itself."""
        texts = self._run("generate", generation_batch(self, requests, self.generation))
        return [truncate_at_stop(text, r.stop) for text, r in zip(texts, requests)]

    def loglikelihood(self, requests: Sequence[LoglikelihoodRequest]) -> list[float]:
        """Sum of the continuation's log-probs (see ``loglikelihood_batch``)."""
        return self._run("loglikelihood", loglikelihood_batch(self, requests))

    def close(self) -> None:
        """Stop the engine (or the replicas) so the GPU memory is free for what comes next (training)."""
        if self._replicas is not None:
            self._replicas.close()
            self._replicas = None
        if self.llm is not None:
            import gc

            import torch

            self.llm = None
            gc.collect()
            torch.cuda.empty_cache()
