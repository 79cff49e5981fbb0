"""Recipe that builds the model organism: corpus -> tokenizer -> tiny Llama -> pretrain -> save.

The pretraining stream is the corpus documents joined by `<|endoftext|>`,
reshuffled every epoch and cut into packed rows of `seq_len` tokens. One real
packed row starts like:

    'Accra is the capital of Ghana.<|endoftext|>42 + 49 = 91<|endoftext|>...'

Usage: `build_organism("out/organism", steps=1500, seed=0)` writes a standard
HF checkpoint (config, safetensors, generation_config, tokenizer files) that
`AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`
load. The same seed gives identical weights (the recipe fixes the thread count).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from tunegate.organism.corpus import pretraining_corpus
from tunegate.organism.tasks import vocabulary_texts
from tunegate.organism.tokenizer import ENDOFTEXT, IM_END, train_tokenizer

DEFAULT_STEPS = 1500
#: One torch thread: the weights depend on the thread count (it changes the order of float sums), and on
#: cores that other processes keep busy one thread trains several times faster than two.
NUM_THREADS = 1


def model_config(tokenizer: PreTrainedTokenizerFast, **overrides: int) -> LlamaConfig:
    """The tiny Llama: 4 layers, width 128, 4 heads, tied embeddings (~1.3M params)."""
    eos = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
    fields = dict(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=512,
        tie_word_embeddings=True, rope_theta=10000.0, bos_token_id=None, eos_token_id=eos, pad_token_id=eos,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def packed_batches(token_docs: list[list[int]], eos_id: int, seq_len: int, batch_size: int,
                   seed: int) -> Iterator[torch.Tensor]:
    """Endless (batch_size, seq_len) rows of eos-joined docs, reshuffled each epoch."""
    rng = random.Random(f"pack-{seed}")
    buffer: list[int] = []
    rows: list[list[int]] = []
    while True:
        order = list(range(len(token_docs)))
        rng.shuffle(order)
        for i in order:
            buffer.extend(token_docs[i])
            buffer.append(eos_id)
            while len(buffer) >= seq_len:
                rows.append(buffer[:seq_len])
                buffer = buffer[seq_len:]
                if len(rows) == batch_size:
                    yield torch.tensor(rows, dtype=torch.long)
                    rows = []


def one_cycle(step: int, total: int, peak: float, warmup_frac: float = 0.1) -> float:
    """Linear warmup to `peak`, cosine decay to peak/100."""
    warm = max(1, int(total * warmup_frac))
    if step < warm:
        return peak * (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(model: LlamaForCausalLM, batches: Iterator[torch.Tensor], *, steps: int, lr: float,
             progress: bool) -> list[float]:
    """Plain AdamW loop over packed batches; returns the loss curve."""
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95))
    model.train()
    losses: list[float] = []
    start = time.time()
    every = max(1, steps // 30)
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = one_cycle(step, steps, lr)
        batch = next(batches)
        loss = model(input_ids=batch, labels=batch).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        if progress and (step % every == 0 or step == steps - 1):
            print(f"organism step {step + 1}/{steps} loss {loss.item():.4f} "
                  f"({time.time() - start:.0f}s)", file=sys.stderr, flush=True)
    model.eval()
    return losses


def build_organism(out_dir: str | Path, *, steps: int = DEFAULT_STEPS, seed: int = 0, progress: bool = True,
                   batch_size: int = 32, seq_len: int = 128, lr: float = 3e-3) -> Path:
    """Build the organism checkpoint into `out_dir` and return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(NUM_THREADS)
    try:
        docs = pretraining_corpus(seed)
        tokenizer = train_tokenizer(docs + vocabulary_texts(seed))
        token_docs = tokenizer(docs, add_special_tokens=False)["input_ids"]
        eos_id = tokenizer.convert_tokens_to_ids(ENDOFTEXT)
        torch.manual_seed(seed)
        model = LlamaForCausalLM(model_config(tokenizer))
        batches = packed_batches(token_docs, eos_id, seq_len, batch_size, seed)
        pretrain(model, batches, steps=steps, lr=lr, progress=progress)
        im_end = tokenizer.convert_tokens_to_ids(IM_END)
        model.generation_config = GenerationConfig(
            eos_token_id=[eos_id, im_end], pad_token_id=eos_id, do_sample=False, max_new_tokens=64,
        )
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
    finally:
        torch.set_num_threads(prev_threads)
    return out


def main(argv: list[str] | None = None) -> int:
    """`python -m tunegate.organism.recipe --out DIR [--steps N] [--seed S]`."""
    parser = argparse.ArgumentParser(description="Build the tunegate model organism.")
    parser.add_argument("--out", required=True)
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    path = build_organism(args.out, steps=args.steps, seed=args.seed)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
