"""The GPU lane (skipped without CUDA): a translation, a sweep point, a 20-step fine-tune and a 50-step
pre-train on a dedicated GPU, each compared with the same computation on the CPU.

Tiny random Gemma 3 models (no hub on GPU machines). Both sides run in float32 with TF32 off, so the
only differences are kernel order: the stated tolerances are 1e-3 on losses (relative) and the same
greedy tokens for a translation; bf16 on CUDA is checked to run and stay finite, not to match.
On CUDA the engine takes the plain path by design: packed linears (modes/serving/packed.py) are for
oneDNN bf16 on a CPU, and row-wise attention is not switched on (the loader does so for CPU bf16 only).
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from tests.conftest import make_tiny_model

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA here: the GPU lane runs on a GPU machine")]
REL = 1e-3  # relative tolerance on a loss, float32 on both devices


@pytest.fixture()
def loaders(tiny_tokenizer):
    from modes.model.loader import ModelLoader

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    model = make_tiny_model(len(tiny_tokenizer), seed=5)
    cpu = ModelLoader.from_model(model, tiny_tokenizer, name="tiny", device="cpu")
    gpu = ModelLoader.from_model(copy.deepcopy(model).to("cuda"), tiny_tokenizer, name="tiny", device="cuda")
    return cpu, gpu


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=1e-5)


@pytest.mark.parametrize("direction", ["en-ko", "ko-en"])
def test_translation_matches_the_cpu(loaders, direction):
    from modes.data import translation as task
    from modes.incontext.core import generate_batch
    from modes.serving.packed import PackedLinear

    prefix, query, _ = task.fewshot_prompt(direction, "Where is the station?" if direction == "en-ko" else "역은 어디에 있어요?", 2)
    outs = [generate_batch(*ld.get(), prefix, [query], max_new_tokens=8)[0] for ld in loaders]
    assert outs[0] == outs[1]
    gpu_model = loaders[1].get()[0]
    assert str(next(gpu_model.parameters()).device).startswith("cuda")
    # Packed linears stay in the model and run plain F.linear on CUDA: nothing to switch off.
    assert all(isinstance(m, PackedLinear) or not isinstance(m, torch.nn.Linear) for m in gpu_model.modules())


def test_sweep_point_matches_the_cpu(loaders):
    from modes.data import translation as task
    from modes.incontext.core import generate_batch
    from modes.metrics import chrf

    test = task.pairs_for("en-ko", "test")[:8]
    prompts = [task.fewshot_prompt("en-ko", p.source, 1, seed=0) for p in test]
    scores = [chrf(generate_batch(*ld.get(), prompts[0][0], [q for _, q, _ in prompts], max_new_tokens=8), [p.target for p in test])
              for ld in loaders]
    assert abs(scores[0] - scores[1]) < 0.5, scores


def test_twenty_step_finetune_matches_the_cpu(loaders):
    from modes.data import translation as task
    from modes.finetune import core as fc

    cfg = fc.FinetuneConfig(steps=20, batch_size=4, eval_every=10, r=4, alpha=8, dropout=0.0)
    train, test = task.pairs_for("en-ko", "train")[:32], task.pairs_for("en-ko", "test")[:6]
    res = [list(fc.finetune(ld, cfg, train, test))[-1] for ld in loaders]
    assert res[1].base_weights_unchanged and res[1].adapter_params_changed == res[1].trainable_params
    assert _close(res[0].eval_loss_before, res[1].eval_loss_before)
    assert abs(res[0].eval_loss_after - res[1].eval_loss_after) < 1e-2 * max(1.0, res[0].eval_loss_after)


def test_fifty_step_pretrain_matches_the_cpu(loaders):
    from modes.data import corpus
    from modes.pretrain import core as pc

    c = corpus.shakespeare()
    cfg = pc.PretrainConfig(size="tiny", steps=50, eval_every=25, sample_every=50, seed=2)
    res = [list(pc.train_scratch(ld, c, cfg))[-1] for ld in loaders]
    assert res[1].params_updated_fraction == 1.0
    assert abs(res[0].val_loss - res[1].val_loss) < 1e-2 * res[0].val_loss, (res[0].val_loss, res[1].val_loss)


def test_bf16_on_cuda_runs_and_stays_finite(tiny_tokenizer):
    from modes.incontext.core import generate_batch
    from modes.pretrain.core import token_losses

    model = make_tiny_model(len(tiny_tokenizer), seed=5).to("cuda", torch.bfloat16)
    r = token_losses(model, tiny_tokenizer, "Where is the station?")
    assert all(math.isfinite(t["loss"]) for t in r.tokens)
    assert isinstance(generate_batch(model, tiny_tokenizer, "", ["English: Hi\nKorean:"], max_new_tokens=4)[0], str)
