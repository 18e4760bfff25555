"""Start-up storm: start `python app.py`, and the moment the page answers, fire every endpoint at once.

Each endpoint runs from its own client (its own session), as a class opening a Space that just
woke up. Every call must either answer or say clearly that it waits; none may fail. Prints when
each endpoint answered, counted from the process start.
Usage: python bench/storm.py [--cold] [--model DIR] [--runs 1]
  --cold converts the embedded model into a fresh cache first (the Space's first wake-up).
tests/test_storm.py runs the same storm three times against a tiny saved model (warm).
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def calls(adapter_zip: str) -> dict:
    """endpoint -> kwargs: the smallest real job of every endpoint."""
    from gradio_client import handle_file

    return {
        "/token_loss": dict(text="The cat sat on the mat."),
        "/translate": dict(text="Where is the station?", direction="en-ko", k=2, max_new_tokens=4),
        "/icl_sweep": dict(direction="ko-en", ks="0", n=2),
        "/pretrain": dict(corpus="shakespeare", size="tiny", steps=5, seed=1),
        "/finetune": dict(steps=2, r=2, seed=0),
        "/load_adapter": dict(path=handle_file(adapter_zip)),
        "/export_script": dict(),
    }


def start_app(model: str | None, cache: str, port: int, log_path: str) -> subprocess.Popen:
    env = dict(os.environ, HOW_MODELS_LEARN_CACHE=cache, GRADIO_SERVER_PORT=str(port), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "app.py"] + (["--model", model] if model else [])
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log_path, "w"), stderr=subprocess.STDOUT)


def wait_for_page(url: str, t0: float, timeout: float = 180) -> float:
    while time.perf_counter() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - t0
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def storm(url: str, jobs: dict, t0: float, timeout: float = 600) -> dict:
    """Fire every job at once, each from its own client; endpoint -> {ok, seconds, error}."""
    from gradio_client import Client

    results: dict = {}
    barrier = threading.Barrier(len(jobs))

    def one(endpoint: str, kwargs: dict):
        try:
            client = Client(url, verbose=False)
            barrier.wait(timeout=60)
            client.predict(api_name=endpoint, **kwargs)
            results[endpoint] = {"ok": True, "seconds": round(time.perf_counter() - t0, 1), "error": None}
        except Exception as exc:  # recorded: a storm counts its failures
            results[endpoint] = {"ok": False, "seconds": round(time.perf_counter() - t0, 1), "error": str(exc)[:300]}

    threads = [threading.Thread(target=one, args=(e, kw), daemon=True) for e, kw in jobs.items()]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    return results


def run_storm(model: str | None, cache: str, adapter_zip: str, log_dir: str) -> dict:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log_path = str(Path(log_dir) / f"app-{port}.log")
    t0 = time.perf_counter()
    proc = start_app(model, cache, port, log_path)
    try:
        page = wait_for_page(url, t0)
        results = storm(url, calls(adapter_zip), t0)
    finally:
        proc.terminate()
        proc.wait(30)
    return {"page": round(page, 1), "results": results, "log": Path(log_path).read_text(errors="replace")}


def save_tiny_model(out: Path) -> str:
    """A tiny random Gemma 3 and a tiny tokenizer, saved as a local HF directory; returns an adapter zip for it."""
    from peft import LoraConfig, get_peft_model
    from tokenizers import ByteLevelBPETokenizer
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, PreTrainedTokenizerFast

    from modes.model.adapters import adapter_zip

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(["English: Where is the station?\nKorean: 역은 어디에 있어요?"] * 4, vocab_size=300,
                            min_frequency=1, special_tokens=["<pad>", "<eos>", "<bos>"])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>")
    cfg = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=2, num_key_value_heads=1, head_dim=16, query_pre_attn_scalar=16,
                           max_position_embeddings=512, sliding_window=64, layer_types=["sliding_attention", "full_attention"],
                           pad_token_id=0, eos_token_id=1, bos_token_id=2)
    model = Gemma3ForCausalLM(cfg)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    zip_path = out.parent / "tiny-adapter.zip"
    zip_path.write_bytes(adapter_zip(peft_model))
    return str(zip_path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cold", action="store_true", help="convert the embedded model into a fresh cache first")
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as d:
        from modes.model.loader import ModelLoader

        cache = str(Path(d) / "cache") if args.cold else os.environ.get("HOW_MODELS_LEARN_CACHE", str(ModelLoader().cache_dir))
        adapter = _embedded_adapter_from_shape(Path(d), hidden=640, q_out=1024)  # Gemma 3 270M: 4 heads x 256
        for i in range(args.runs):
            out = run_storm(None, cache, adapter, d)
            print(f"run {i + 1} ({'cold' if args.cold and i == 0 else 'warm'} cache): page answered at {out['page']} s")
            for endpoint, r in sorted(out["results"].items(), key=lambda kv: kv[1]["seconds"]):
                print(f"  {endpoint:15s} {'answered' if r['ok'] else 'FAILED  '} at {r['seconds']:6.1f} s  {r['error'] or ''}")
            failed = [e for e, r in out["results"].items() if not r["ok"]]
            print(f"  failures: {len(failed)} of {len(out['results'])}")
            args.cold = False


def _embedded_adapter_from_shape(d: Path, hidden: int, q_out: int) -> str:
    """A valid r=2 LoRA adapter zip for layer 0's q_proj of a model of this shape (zeros: it changes nothing)."""
    import json

    import torch
    from safetensors.torch import save

    tensors = {"base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight": torch.zeros(2, hidden),
               "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight": torch.zeros(q_out, 2)}
    conf = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"], "task_type": "CAUSAL_LM",
            "bias": "none", "lora_dropout": 0.0}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("adapter_model.safetensors", save(tensors))
        z.writestr("adapter_config.json", json.dumps(conf))
    out = d / "embedded-adapter.zip"
    out.write_bytes(buf.getvalue())
    return str(out)


if __name__ == "__main__":
    main()
