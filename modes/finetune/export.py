"""Export the learner's fine-tune settings as a standalone training script for a bigger machine.

The script uses transformers' Trainer, PEFT and datasets only, so it runs unchanged with
`python train_lora.py` on a CPU or `accelerate launch train_lora.py` on several GPUs.
"""

from __future__ import annotations

from modes.finetune.config import TARGETS

SCRIPT = '''#!/usr/bin/env python
"""LoRA fine-tune for {what}, exported from How Models Learn.

Run:  python train_lora.py --model MODEL --data pairs.jsonl
 or:  accelerate launch train_lora.py --model MODEL --data pairs.jsonl      (multi-GPU)
MODEL is a Hub id (e.g. google/gemma-3-270m) or a local HF directory. The data is JSONL or CSV with
`source` and `target` columns (a summary: `dialogue` and `summary`), or the app's own
assets/data/en_ko_pairs.jsonl or assets/data/dialogues.jsonl (their train split is used).
"""

import argparse

import torch
from datasets import load_dataset
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments

TEMPLATE = {template!r}
TASK = {task!r}
DIRECTION = {direction!r}
SUMMARY_LANG = {summary_lang!r}
LABELS = {{"en": ("Dialogue", "Summary"), "ko": ("대화", "요약")}}[SUMMARY_LANG]
LANGS = {{"en-ko": ("English", "Korean", "en", "ko"), "ko-en": ("Korean", "English", "ko", "en")}}[DIRECTION]
SETTINGS = dict(r={r}, lora_alpha={alpha}, lora_dropout={dropout}, target_modules={targets!r})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--output", default="lora-adapter")
    ap.add_argument("--max-steps", type=int, default={steps})
    ap.add_argument("--batch-size", type=int, default={batch_size})
    ap.add_argument("--learning-rate", type=float, default={learning_rate})
    ap.add_argument("--max-length", type=int, default={max_length})
    ap.add_argument("--seed", type=int, default={seed})
    args = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(args.model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", bias="none", **SETTINGS))
    model.print_trainable_parameters()

    ds = load_dataset("json" if args.data.endswith((".jsonl", ".json")) else "csv", data_files=args.data, split="train")
    if "split" in ds.column_names:  # the app's own file: train split only, never the held-out pairs
        ds = ds.filter(lambda r: r["split"] == "train")
    if TASK == "dialogue-summary":
        if SUMMARY_LANG in ds.column_names:  # the app's dialogues.jsonl: one language's side
            ds = ds.map(lambda r: {{"dialogue": r[SUMMARY_LANG]["dialogue"], "summary": r[SUMMARY_LANG]["summary"]}})
        src_col, tgt_col = "dialogue", "summary"
    else:
        src_col, tgt_col = ("source", "target") if "source" in ds.column_names else LANGS[2:]
    head, tail = TEMPLATE.split("{{target}}", 1)

    def encode(row):
        if TASK == "dialogue-summary":  # the app's summary prompt: the dialogue, then its one-sentence summary
            prompt = LABELS[0] + ":\\n" + row[src_col].strip() + "\\n" + LABELS[1] + ":"
            target = " " + row[tgt_col].strip() + "\\n"
        else:
            h = head.format(src_lang=LANGS[0], tgt_lang=LANGS[1], source=row[src_col])
            prompt = h.rstrip(" ")
            target = h[len(prompt):] + row[tgt_col] + "\\n"
        p_ids = tok(prompt)["input_ids"]
        t_ids = tok(target, add_special_tokens=False)["input_ids"]
        ids = (p_ids + t_ids)[: args.max_length]
        labels = ([-100] * len(p_ids) + t_ids)[: args.max_length]  # loss on the target only
        return {{"input_ids": ids, "labels": labels}}

    ds = ds.map(encode, remove_columns=ds.column_names)

    def collate(batch):
        width = max(len(b["input_ids"]) for b in batch)
        pad = lambda xs, v: [x + [v] * (width - len(x)) for x in xs]
        ids = torch.tensor(pad([b["input_ids"] for b in batch], tok.pad_token_id))
        labels = torch.tensor(pad([b["labels"] for b in batch], -100))
        mask = torch.tensor(pad([[1] * len(b["input_ids"]) for b in batch], 0))
        return {{"input_ids": ids, "attention_mask": mask, "labels": labels}}

    targs = TrainingArguments(
        output_dir=args.output, max_steps=args.max_steps, per_device_train_batch_size=args.batch_size,
        learning_rate=args.learning_rate, warmup_steps=min(5, args.max_steps), lr_scheduler_type="linear",
        logging_steps=10, save_strategy="no", report_to=[], seed=args.seed, remove_unused_columns=False,
        bf16=torch.cuda.is_available(), ddp_find_unused_parameters=False,
    )
    Trainer(model=model, args=targs, train_dataset=ds, data_collator=collate).train()
    model.save_pretrained(args.output)
    print(f"adapter saved to {{args.output}}")


if __name__ == "__main__":
    main()
'''


def render_script(cfg, template: str) -> str:
    """The script text for a FinetuneConfig and prompt template."""
    text = SCRIPT.format(
        what=f"{cfg.direction} translation" if cfg.task == "translation" else f"dialogue summary ({cfg.summary_lang})",
        task=cfg.task, summary_lang=cfg.summary_lang, direction=cfg.direction, template=template, r=cfg.r, alpha=cfg.alpha, dropout=cfg.dropout,
        targets=TARGETS[cfg.target], steps=cfg.steps, batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate, max_length=cfg.max_length, seed=cfg.seed,
    )
    compile(text, "train_lora.py", "exec")  # a broken script is our bug: fail here, not on the learner's GPU
    return text
