"""LoRA fine-tuning compute: labelled pairs in, a small adapter out, with proof that only it changed.

Pure functions; no Gradio. Training runs on a private copy of the shared base model (so other
learners' requests never see a half-trained adapter) and yields progress events. The before/after
scoring it ends with is modes/finetune/scoring.py.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator

import torch
import torch.nn.functional as F

from modes.codec import recordable
from modes.data import translation as task
from modes.data.tasks import prompting
from modes.data.translation import Pair
from modes.finetune.batches import collate, encode_example, encode_pair, length_grouped_batches  # noqa: F401 (encode_pair: bench, tests)
from modes.finetune.config import FinetuneConfig
from modes.finetune.scoring import price, score, versus_k_shots
from modes.metrics import weights_hash
from modes.model.adapters import Adapter, adapter_zip, serving_model, validate_adapter_zip
from modes.model.head_loss import head_cross_entropy
from modes.runs.events import Done, Eval, Step
from modes.serving.engine import bulk_generator


def masked_lm_loss(model, ids, mask, labels) -> torch.Tensor:
    """Cross-entropy on target tokens only, computing logits only where a label exists.

    hidden [B, T, H] -> the N labelled positions [N, H] -> the head's logits [N, V]. With V = 262,144, the
    full [B, T, V] logits would dominate the step; the prompt positions never need them. A frozen head
    without a bias (Gemma's, in a LoRA run) goes through the one-pass loss (modes/model/head_loss.py).
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = base.model(input_ids=ids, attention_mask=mask).last_hidden_state  # [B, T, H]
    tgt = labels[:, 1:]  # position t predicts token t+1
    keep = tgt != -100  # [B, T-1]
    h = hidden[:, :-1][keep]  # [N, H]
    head = base.lm_head
    if isinstance(head, torch.nn.Linear) and head.bias is None and not head.weight.requires_grad and h.shape[0]:
        return head_cross_entropy(h, head.weight, tgt[keep])
    return F.cross_entropy(head(h).float(), tgt[keep])


@torch.no_grad()
def eval_loss(model, examples: list, pad_id: int, batch_size: int = 16) -> float:
    """Mean target-token loss over `examples` (weighted by target tokens)."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for s in range(0, len(examples), batch_size):
        ids, mask, labels = collate(examples[s : s + batch_size], pad_id)
        n = int((labels[:, 1:] != -100).sum())
        total += float(masked_lm_loss(model, ids.to(model.device), mask.to(model.device), labels.to(model.device))) * n
        count += n
    model.train(was_training)
    return total / max(count, 1)


def is_lora(name: str) -> bool:
    return "lora_" in name


def base_name(peft_name: str) -> str:
    """'base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight' -> the base model's name."""
    return peft_name.removeprefix("base_model.model.").replace(".base_layer", "")


# ---- training -------------------------------------------------------------------------------------
@recordable
@dataclass
class FtResult(Done):
    steps: int
    seconds: float
    train_loss_first: float
    train_loss_last: float
    eval_loss_before: float
    eval_loss_after: float
    chrf_before: float | None
    chrf_after: float | None
    trainable_params: int
    trainable_fraction: float
    base_weights_unchanged: bool
    base_hash_before: str
    base_hash_after: str
    adapter_params_changed: int
    samples_per_s: float
    dtype: str = "float32"  # the training copy's base precision (the adapter is float32; scoring runs on the served model)
    stopped: bool = False
    diverged_at: int | None = None  # the step whose loss (or gradient) was not finite; training stopped there
    kept_step: int | None = None  # after divergence: the adapter kept is the one after this step
    empty_outputs: int = 0  # held-out translations that came back empty (the model ended at once)
    examples: list[dict] = field(default_factory=list)  # source, base, finetuned, reference
    curve: list[dict] = field(default_factory=list)
    adapter: Adapter | None = None
    off_task: dict | None = None  # what the adapter costs elsewhere (modes/finetune/offtask.py)
    off_task_base: dict | None = None  # the adapter-off side of it: the same for every learner, reusable
    base_outputs: list[str] | None = None  # the base model's held-out answers, when this run decoded them all (reusable)
    # translation: the adapter against the base model with 4 examples in the prompt on the same held-out pairs
    # {"k", "chrf_k", "lead", "low", "high", "ahead"} (modes/finetune/scoring.py: lead_over)
    lead: dict | None = None
    k_side: dict | None = None  # the k-shot base answers {"k", "chrf", "outputs"}, when this run decoded them (reusable)

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("off_task_base")
        d.pop("base_outputs")
        d.pop("k_side")
        if self.off_task is not None:
            d["off_task_seconds"] = self.off_task["off_task_seconds"]
        for k in ("curve", "adapter", "examples"):
            d.pop(k)
        return d


def lr_lambda(cfg: FinetuneConfig):
    def f(step: int) -> float:
        if step < cfg.warmup:
            return (step + 1) / cfg.warmup
        return max(0.0, 1 - (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)) * 0.9 + 0.1

    return f


@dataclass
class TrainRun:
    """What the training loop leaves behind for the scoring that follows it."""

    step: int = 0  # updates that completed
    seconds: float = 0.0
    first: float = float("nan")  # the first and the last training loss
    last: float = float("nan")
    seen: int = 0  # training pairs seen
    stopped: bool = False
    diverged_at: int | None = None  # the step whose loss (or gradient) was not finite
    kept_step: int | None = None  # after divergence: the adapter kept is the one after this step
    curve: list = field(default_factory=list)  # train and held-out points (held-out ones after kept_step dropped)


def _train(model, cfg: FinetuneConfig, train: list, test: list, pad: int, rng: random.Random,
           should_stop: Callable[[], bool], fail_at_step: int | None) -> Iterator[Step | Eval]:
    """The LoRA updates: yields progress per step, returns a TrainRun. A non-finite loss or gradient
    stops it at once and puts back the last adapter whose loss was finite."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg))
    run = TrainRun()
    batches: list = []
    t0 = time.perf_counter()
    last_good: tuple[int, dict] | None = None  # (step after which, trainable tensors): the last adapter with a finite loss
    trainable_params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    model.train()
    for step in range(1, cfg.steps + 1):
        if should_stop():
            run.stopped = True
            break
        if not batches:
            batches = length_grouped_batches(train, cfg.batch_size, rng)
        ids, mask, labels = (t.to(model.device) for t in collate(batches.pop(), pad))
        if fail_at_step == step:
            raise RuntimeError(f"injected failure at step {step}")
        loss = masked_lm_loss(model, ids, mask, labels)
        if not torch.isfinite(loss):  # the adapter after the previous update makes the loss NaN/inf
            run.diverged_at = step
            break
        last_good = (step - 1, {n: p.detach().clone() for n, p in trainable_params.items()})
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(list(trainable_params.values()), 1.0)
        if not torch.isfinite(norm):  # an update from this gradient would fill the adapter with NaN
            run.diverged_at = step
            break
        opt.step()
        sched.step()
        run.step, run.last = step, loss.item()
        run.first = run.last if step == 1 else run.first
        run.seen += ids.shape[0]
        run.curve.append({"step": step, "loss": run.last, "split": "train"})
        ev = None
        if step % cfg.eval_every == 0 or step == cfg.steps:
            ev = eval_loss(model, test, pad)
            run.curve.append({"step": step, "loss": ev, "split": "held-out eval"})
        elapsed = time.perf_counter() - t0
        if ev is not None:
            yield Eval(step, ev)
        yield Step(step, cfg.steps, run.last, elapsed, (cfg.steps - step) * elapsed / step, run.seen / elapsed)
    run.seconds = time.perf_counter() - t0
    if run.diverged_at is not None:
        run.step = run.diverged_at - 1  # updates that completed
        run.kept_step = last_good[0] if last_good else 0
        if last_good:
            with torch.no_grad():
                for n, p in trainable_params.items():
                    p.copy_(last_good[1][n])
        run.curve = [c for c in run.curve if c["step"] <= run.kept_step or c["split"] == "train"]
    return run


def finetune(
    loader,
    cfg: FinetuneConfig,
    train_pairs: list[Pair],
    test_pairs: list[Pair],
    template: str = task.DEFAULT_TEMPLATE,
    should_stop: Callable[[], bool] = lambda: False,
    chrf_before: float | None = None,
    base_outputs: list[str] | None = None,
    n_examples: int = 6,
    fail_at_step: int | None = None,
    off_task: bool = True,
    off_task_base: dict | None = None,
    shakespeare_val: str | None = None,
    generate: Callable | None = None,
    k_side: dict | None = None,
) -> Iterator[Step | Eval | FtResult]:
    """Train a LoRA adapter on a private copy of the base model; yield progress, then the result.

    `chrf_before` skips re-scoring the base model when the caller already knows it (and `base_outputs`, its
    answers to the held-out pairs, skips decoding the few shown beside the adapter's); `off_task_base`
    likewise skips the adapter-off side of the off-task measurement (`off_task=False` skips it all).
    `k_side`: the base model's held-out answers at k=4 when known (else decoded: the lead over them is reported).
    `fail_at_step` is a test hook: raise inside that training step. `generate` is the generation
    engine's bulk generator (modes.serving.engine.bulk_generator); None makes a private one.
    A non-finite loss or gradient stops the run at once; the adapter kept is the last one whose
    loss was finite (a snapshot of the trainable tensors is taken before every update).
    """
    from peft import get_peft_model

    generate = generate or bulk_generator(None)

    base, tok = loader.get()
    # A private float32 copy (on a CPU, even when the served model is bf16): the shared model never changes.
    private = loader.training_copy()
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    base_hash = weights_hash(private)
    model = get_peft_model(private, cfg.lora_config())
    pad = tok.pad_token_id
    pr = prompting(cfg.task, cfg.direction, cfg.summary_lang, template)
    train = [encode_example(tok, pr, p, cfg.max_length) for p in train_pairs]
    test = [encode_example(tok, pr, p, cfg.max_length) for p in test_pairs]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    lora_before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    eval_before = eval_loss(model, test, pad)
    # Step 0: the held-out loss before training, so a live curve starts where the final one does.
    yield Eval(0, eval_before)
    run = yield from _train(model, cfg, train, test, pad, rng, should_stop, fail_at_step)
    curve = [{"step": 0, "loss": eval_before, "split": "held-out eval"}] + run.curve
    step, seconds = run.step, run.seconds
    model.eval()
    fresh_eval = run.diverged_at is not None or not step or curve[-1]["split"] != "held-out eval"
    eval_after = eval_loss(model, test, pad) if fresh_eval else curve[-1]["loss"]
    base_after = _hash_renamed(model)  # the frozen base inside the adapter model, under base names
    changed = sum(int(not torch.equal(lora_before[n], p)) * p.numel() for n, p in model.named_parameters() if n in lora_before)
    zip_bytes = adapter_zip(model)
    validate_adapter_zip(zip_bytes, base)  # the same integrity checks as an upload: never hand out a broken adapter
    train_dtype = str(next(p for p in model.parameters() if not p.requires_grad).dtype).removeprefix("torch.")
    adapter = Adapter(zip_bytes, pr.label, template, trainable, total, "trained")
    tuned = serving_model(base, adapter)  # what /translate serves for it: the served base (not a bf16 training copy) + adapter
    known = chrf_before is not None
    chrf_before, score_after, examples, empty, base_outs, after = score(tuned, base, tok, pr, test_pairs, chrf_before, n_examples,
                                                                         generate, base_outputs)
    lead, new_k_side = versus_k_shots(base, tok, pr, train_pairs, test_pairs, after, k_side, generate)
    cost, cost_base = price(model, tok, cfg, template, shakespeare_val, off_task_base, generate, tuned, base, train_dtype) \
        if off_task else (None, None)
    del model, private, tuned  # the training copy lives only while the run does
    yield FtResult(
        steps=step, seconds=round(seconds, 2), train_loss_first=round(run.first, 4), train_loss_last=round(run.last, 4),
        eval_loss_before=round(eval_before, 4), eval_loss_after=round(eval_after, 4),
        chrf_before=chrf_before, chrf_after=score_after, trainable_params=trainable,
        trainable_fraction=round(trainable / total, 6), base_weights_unchanged=base_after == base_hash,
        base_hash_before=base_hash, base_hash_after=base_after, adapter_params_changed=changed,
        samples_per_s=round(run.seen / max(seconds, 1e-9), 3), stopped=run.stopped, diverged_at=run.diverged_at,
        kept_step=run.kept_step,
        empty_outputs=empty, off_task=cost, off_task_base=cost_base, dtype=train_dtype, base_outputs=None if known else base_outs,
        examples=examples, curve=curve, adapter=adapter, lead=lead, k_side=new_k_side,
    )


def _hash_renamed(peft_model) -> str:
    """weights_hash of the frozen base inside a PeftModel, under the base model's parameter names."""

    class _View:
        def named_parameters(self):
            return ((base_name(n), p) for n, p in peft_model.named_parameters() if not is_lora(n))

    return weights_hash(_View())
