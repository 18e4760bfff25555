"""Which precision the shared model serves in and a fine-tune trains in, decided per CPU at load.

The decisions `ModelLoader` makes at load (modes/model/loader.py), kept apart from where models come
from: the served dtype (native bf16 flag, a decode-step probe, then the batch-invariance check) and a
fine-tune's base dtype (modes/model/training.py). Both are measured once per CPU model, torch build and
model, and kept in `cpu-precision.json` beside the model cache (modes/serving/precision.py).
"""

from __future__ import annotations

from modes.serving.precision import cached_choice, choice_key, cpu_bf16_flags


class PrecisionChoice:
    """The loader's precision decisions; it holds device, cache_dir, model_id, status, the probes and `_load_float32`."""

    def _decide_cpu_dtype(self, model):
        """The served model's precision on a CPU: bf16 only where it is native and measured faster.

        Many CPUs emulate bf16 slowly, and torch's CPU capability string does not tell; so bf16 needs
        the cpuinfo flag *and* a decode-step probe (fp32, then the same model cast to bf16). If bf16
        loses, the float32 weights are loaded again from their source.
        """
        import torch

        if not self.device.startswith("cpu"):
            return model
        if self.dtype_request == "float32":
            self.dtype_reason = "float32 (asked for with --dtype/HML_DTYPE)"
            return model
        if self.dtype_request == "bfloat16":
            self.dtype_reason = "bfloat16 (asked for with --dtype/HML_DTYPE)"
            return model.to(torch.bfloat16)
        from modes.serving.heavy import IN_CALL, detect

        if detect() == IN_CALL:  # no model may run outside a GPU call, and the GPU is where it serves
            self.dtype_reason = "float32: in-call mode measures nothing outside a GPU call"
            return model
        flags = cpu_bf16_flags()
        if not flags:
            self.dtype_reason = "float32: this CPU has no native bf16 (no avx512_bf16, amx_bf16 or bf16 flag)"
            return model
        known = cached_choice(self.cache_dir, choice_key(self.model_id))
        if known and known.get("dtype") in ("float32", "bfloat16"):
            self.dtype_reason = f"{known['reason']} (measured at an earlier start on this CPU)"
            return model.to(torch.bfloat16) if known["dtype"] == "bfloat16" else model
        self._measured = True
        self.status.message = "Measuring bf16 against float32 decoding on this CPU ..."
        t32 = self._probe(model)
        model.to(torch.bfloat16)
        t16 = self._probe(model)
        step = f"decode step {t32 * 1000:.0f} ms in float32, {t16 * 1000:.0f} ms in bf16"
        if t16 < 0.9 * t32:
            self.dtype_reason = f"bfloat16: native on this CPU ({', '.join(flags)}) and faster here ({step})"
            return model
        self.dtype_reason = f"float32: bf16 is native here ({', '.join(flags)}) but was not faster ({step})"
        return self._load_float32().to(self.device).eval()

    def _decide_train_dtype(self, model) -> None:
        """A fine-tune's base precision on a CPU, measured once per CPU (modes/model/training.py); `model`
        is the freshly loaded float32 model."""
        import torch

        from modes.serving.heavy import IN_CALL, detect

        if not self.device.startswith("cpu") or next(model.parameters()).dtype != torch.float32:
            return
        if detect() == IN_CALL:
            self.train_dtype_reason = "float32: in-call mode measures nothing outside a GPU call"
            return
        from modes.model import training

        self.status.message = "Measuring a training step in bf16 against float32 on this CPU ..."
        kw = {"probe": self._train_probe} if self._train_probe else {}
        self.train_dtype, self.train_dtype_reason = training.decide(model, self.cache_dir, self.model_id, self.train_request,
                                                                    flags=cpu_bf16_flags(), **kw)

    def _check_invariance(self, model, tok):
        """bf16 won on speed; it is served only if a row decodes the same alone and batched here (bit for
        bit, modes/serving/invariance.py). Otherwise float32, which is reloaded, and the reason says why."""
        if self._invariance is None:
            from modes.serving.invariance import check as invariance
        else:
            invariance = self._invariance
        self.status.message = "Checking that a row decodes the same alone and in a batch in bf16 ..."
        same, what = invariance(model, tok)
        if same:
            self.dtype_reason += f"; a row decodes the same alone and batched ({what})"
            return model
        self.dtype_reason = "float32: bf16 is " + self.dtype_reason.removeprefix("bfloat16: ") + f", but not batch-invariant here: {what}"
        self.dtype_name = "float32"
        return self._load_float32().to(self.device).eval()
