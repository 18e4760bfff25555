"""Pre-training's two objectives side by side: the same tiny model, corpus, split and steps.

Runs the tab's default (`baby`, 1,100 steps, Muon) once with the next-token objective and once with the
masked one, and prints for each: the final validation loss (nats per character; the masked run's is per
masked character, on fixed held-out masks), bits per character, seconds, and for the masked run its
fill-in accuracy against always guessing the commonest character, and what it writes left to right.
The two losses are not one task: the masked model sees both sides of each gap.
Usage: python bench/objectives.py [--size baby] [--steps 1100]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store import cpu
from modes.data import corpus
from modes.pretrain import core as pc
from modes.pretrain.config import PretrainConfig


class CpuLoader:
    """Only what train_scratch asks of the app's loader: the libraries, and where the model goes."""

    def libraries(self) -> None:
        pass

    def resolved_device(self) -> str:
        return "cpu"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default=PretrainConfig.size)
    ap.add_argument("--steps", type=int, default=PretrainConfig.steps)
    args = ap.parse_args()
    print(f"CPU: {cpu()}, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.size}, {args.steps} steps")
    data = corpus.shakespeare()
    for objective in ("next-token", "masked"):
        cfg = PretrainConfig(size=args.size, steps=args.steps, objective=objective)
        t = time.perf_counter()
        res = list(pc.train_scratch(CpuLoader(), data, cfg))[-1]
        wall = time.perf_counter() - t
        line = (f"{objective:>10}: val loss {res.val_loss:.4f} nats/{'masked ' if objective == 'masked' else ''}char, "
                f"{res.val_bpc:.3f} bits, training {res.seconds:.1f} s (wall {wall:.1f} s)")
        if objective == "masked":
            line += (f"; fill-in {100 * res.fill_in_accuracy:.1f}% vs commonest-character {100 * res.unigram_accuracy:.1f}%; "
                     f"left to right: {res.left_to_right[:60]!r}")
        print(line, flush=True)


if __name__ == "__main__":
    main()
