"""GPU check: every compute path of the three tabs on CUDA (bf16), at the real model's size.

The GPU machines here reach no model hub and the 1 GB converted model does not travel to them, so
this builds a Gemma 3 270M of the same shape from the cached config.json with *random* weights, and
uses the real tokenizer. That checks devices, dtypes and speed at full size; translation quality
means nothing here (the CPU benchmarks measure it on the real weights).

It runs: token losses, the pretrained bits/char, a from-scratch pre-train with its GPT baseline,
a LoRA fine-tune (adapter-only proof, zip, re-apply), few-shot batch generation with a prefix cache
and streaming time to first token. Prints a table and writes a JSON summary.
Usage: python bench/gpu_check.py --assets DIR [--out FILE]
  DIR holds config.json, tokenizer.json, tokenizer_config.json (from the embedded model's cache)
  and train.txt / val.txt (the Shakespeare split, from modes.data.corpus).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pretrain import baseline_curve, load_corpus, tab_curve
from modes.data import translation as task
from modes.finetune import core as fc
from modes.incontext import core as ic
from modes.metrics import pretrained_bpc
from modes.model.adapters import apply_adapter
from modes.model.embedded import load_cached_tokenizer
from modes.model.loader import ModelLoader
from modes.pretrain import core as pc
from modes.runs.events import Eval, Step
from modes.serving.precision import pick_device

T = task.DEFAULT_TEMPLATE
RESULTS: dict = {}


def timed(name: str, fn, *a, **kw):
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    t = time.perf_counter()
    out = fn(*a, **kw)
    torch.cuda.synchronize() if torch.cuda.is_available() else None
    RESULTS[f"{name}_s"] = round(time.perf_counter() - t, 3)
    print(f"{name}: {RESULTS[name + '_s']:.2f} s", flush=True)
    return out


def pretrain_tokens_per_s(loader, data, vocab, steps: int, device: str) -> tuple[float, float]:
    """Training tokens/s of the tab's loop (baby preset) and of nanoGPT's GPT of the same shape, each with
    its own batch size and its evals (every 100 steps), one after the other in this process."""
    cfg = pc.PretrainConfig(size="baby", steps=steps, eval_every=100, sample_every=steps)
    _, _, ours = tab_curve(loader, data, cfg)
    _, gpt = baseline_curve(data, vocab, steps, device)
    block = cfg.preset.block_size
    return steps * cfg.preset.batch_size * block / ours, steps * 12 * block / gpt  # baseline_curve's batch is 12


def full_size_loader(assets: Path, device: str, layers: int | None) -> ModelLoader:
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    cfg = Gemma3TextConfig.from_dict(json.loads((assets / "config.json").read_text()))
    if layers:  # a shorter stack, for trying this script on a CPU
        cfg.num_hidden_layers, cfg.layer_types = layers, cfg.layer_types[:layers]
    torch.manual_seed(0)
    with torch.device(device):
        model = Gemma3ForCausalLM(cfg)
    model.to(torch.bfloat16 if device == "cuda" else torch.float32)
    tok = load_cached_tokenizer(str(assets))
    return ModelLoader.from_model(model, tok, name="Gemma 3 270M shape, random weights", device=device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--out", default="gpu_check.json")
    ap.add_argument("--layers", type=int, help="fewer layers (to try the script on a CPU)")
    ap.add_argument("--pretrain-steps", type=int, default=2000)
    args = ap.parse_args()
    assets = Path(args.assets)
    import peft
    import transformers

    device, dtype = pick_device()
    RESULTS.update(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__,
                   device=torch.cuda.get_device_name(0) if device == "cuda" else "cpu", picked=[device, dtype])
    print(RESULTS, flush=True)

    loader = timed("build_model", full_size_loader, assets, device, args.layers)
    model, tok = loader.get()
    RESULTS["params"] = sum(p.numel() for p in model.parameters())
    RESULTS["model_dtype"] = str(next(model.parameters()).dtype)
    assert str(model.device).startswith(device), model.device

    # Tab 1, part 1: token losses and the pretrained bits/char.
    res = timed("token_losses", pc.token_losses, model, tok, "Now is the winter of our discontent. 지금은 우리 불만의 겨울이다.")
    assert all(math.isfinite(r["loss"]) for r in res.tokens) and len(res.tokens[0]["top"]) == 5
    data = load_corpus(args.assets)
    bpc = timed("pretrained_bpc_4000_chars", pretrained_bpc, model, tok, data.val[: pc.VAL_SNIPPET_CHARS])
    assert math.isfinite(bpc)

    # Tab 1, part 2: from-scratch pre-training, ours against the plain GPT loop on this device.
    vocab = pc.CharVocab(data.train + data.val)
    ours_tps, gpt_tps = pretrain_tokens_per_s(loader, data, vocab, 300, device)
    RESULTS.update(pretrain_tokens_per_s=round(ours_tps), gpt_tokens_per_s=round(gpt_tps), pretrain_ratio=round(ours_tps / gpt_tps, 2))
    print(f"pre-train: ours {ours_tps:,.0f} tokens/s, GPT {gpt_tps:,.0f} tokens/s, ratio {ours_tps / gpt_tps:.2f}x", flush=True)
    cfg = pc.PretrainConfig(size="baby", steps=args.pretrain_steps, eval_every=100, sample_every=args.pretrain_steps)
    curve, val = [], None
    for ev in pc.train_scratch(loader, data, cfg, reference_bpc=lambda text: bpc):
        if isinstance(ev, pc.PretrainResult):
            final = ev
            break
        if isinstance(ev, Eval):
            val = ev  # its step's Step follows, with the wall time
        elif isinstance(ev, Step) and val is not None and val.step == ev.step:
            curve.append((ev.step, round(ev.elapsed, 1), round(val.loss, 3)))
    first2 = next(((s, w) for s, w, v in curve if v <= 2.0), None)
    RESULTS.update(pretrain_val_loss=final.val_loss, pretrain_seconds=final.seconds, pretrain_val_le_2_at=first2,
                   pretrain_updated=final.params_updated_fraction, pretrain_sample=final.samples[-1]["text"][:120])
    print(f"pre-train {final.steps} steps: val {final.val_loss:.3f} in {final.seconds:.1f} s; <=2.0 at {first2}", flush=True)
    assert final.params_updated_fraction == 1.0

    # Tab 2: LoRA fine-tune on the full-size model.
    train_pairs, test_pairs = task.pairs_for("en-ko", "train")[:128], task.pairs_for("en-ko", "test")[:24]
    ft = fc.FinetuneConfig(steps=30, eval_every=15)
    t = time.perf_counter()
    for ev in fc.finetune(loader, ft, train_pairs, test_pairs):
        if isinstance(ev, fc.FtResult):
            r = ev
    RESULTS.update(ft_wall_s=round(time.perf_counter() - t, 2), ft_train_s=r.seconds, ft_samples_per_s=r.samples_per_s,
                   ft_eval_loss=[r.eval_loss_before, r.eval_loss_after], ft_base_unchanged=r.base_weights_unchanged,
                   ft_trainable=r.trainable_params, ft_changed=r.adapter_params_changed)
    print(f"LoRA: {r.samples_per_s:.1f} samples/s, eval loss {r.eval_loss_before:.2f} -> {r.eval_loss_after:.2f}, "
          f"base unchanged {r.base_weights_unchanged}", flush=True)
    assert r.base_weights_unchanged and r.adapter_params_changed == r.trainable_params and r.eval_loss_after < r.eval_loss_before
    peft_model = timed("apply_adapter", apply_adapter, model, r.adapter)
    outs = timed("translate_with_adapter_24", ic.generate_batch, peft_model, tok, "",
                 [task.render_prompt(T, "en-ko", p.source) for p in test_pairs])
    assert len(outs) == len(test_pairs)
    del peft_model

    # Tab 3: few-shot generation, batched with a prefix cache, and streaming.
    pool = task.pairs_for("en-ko", "train")
    ex = task.select_examples(pool, 8, "random", seed=0)
    prefix, _ = task.split_prompt(T, "en-ko", ex, test_pairs[0].source)
    eng = ic.Engine()
    timed("prefill_8shot_cold", eng.prefixes.get, ic.model_lane(model), model, tok, prefix)
    hyps = timed("icl_batch_24", ic.generate_batch, model, tok, prefix,
                 [task.render_prompt(T, "en-ko", p.source) for p in test_pairs], engine=eng)
    assert len(hyps) == len(test_pairs)
    query = task.render_prompt(T, "en-ko", test_pairs[0].source)
    ttft = []
    for _ in range(5):  # random weights may emit only special tokens, which show no text: then no TTFT
        for ev in ic.stream_generate(model, tok, prefix, query, max_new_tokens=8, engine=eng):
            if ev.ttft is not None:
                ttft.append(ev.ttft)
                break
    RESULTS["icl_ttft_8shot_warm_median_s"] = round(statistics.median(ttft), 4) if ttft else None
    print(f"8-shot TTFT (prefix cached): {RESULTS['icl_ttft_8shot_warm_median_s']} s over {len(ttft)} runs", flush=True)
    RESULTS["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None
    Path(args.out).write_text(json.dumps(RESULTS, indent=2, ensure_ascii=False))
    print(json.dumps(RESULTS, indent=2, ensure_ascii=False))
    print("GPU CHECK OK")


if __name__ == "__main__":
    main()
