"""A fine-tune's examples as the model reads them: a pair tokenised with a loss mask (the prompt labelled -100, only
the target learned), batches padded to their own longest item, and batches of similar lengths in a random order."""

from __future__ import annotations

import random

import torch

from modes.data.tasks import Prompting
from modes.data.translation import Pair


def encode_pair(tok, template: str, direction: str, pair: Pair, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one translation pair: the prompt part is labelled -100, only the target is learned."""
    return encode_example(tok, Prompting("translation", direction, template), pair, max_length)


def encode_example(tok, pr: Prompting, pair: Pair, max_length: int) -> tuple[list[int], list[int]]:
    """(input_ids, labels) for one pair of any task: the prompt part is labelled -100, only the target is learned."""
    prompt = tok(pr.prompt(pair.source), add_special_tokens=True)["input_ids"]
    target = tok(pr.target(pair.source, pair.target), add_special_tokens=False)["input_ids"]
    ids = (prompt + target)[:max_length]
    labels = ([-100] * len(prompt) + target)[:max_length]
    return ids, labels


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int):
    """Right-pad to the longest item of this batch only: [B, T] ids, mask and labels."""
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, mask, labels


def length_grouped_batches(examples: list, batch_size: int, rng: random.Random) -> list[list]:
    """Shuffle, then sort within windows of 8 batches by length: little padding, still random order."""
    order = examples[:]
    rng.shuffle(order)
    window = batch_size * 8
    batches = []
    for s in range(0, len(order), window):
        chunk = sorted(order[s : s + window], key=lambda e: len(e[0]))
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches
