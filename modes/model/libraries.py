"""The heavy libraries (torch, transformers, peft, sacrebleu): imported fully, once, by the loader's thread.

Two threads importing transformers at once can hand one of them a half-initialised module, so
`ModelLoader.libraries()` is their one owner, and the page appears before they finish importing.
"""

from __future__ import annotations

import importlib

LIBRARIES_MESSAGE = "Loading the model libraries (torch, transformers, peft) ..."

# The symbols every compute path takes from the heavy libraries. Resolving them here, in one thread,
# runs transformers' and peft's lazy submodule imports once; later imports are plain dict look-ups.
HEAVY_SYMBOLS = {
    "transformers": ("AutoModelForCausalLM", "AutoTokenizer", "AutoModel", "TokenizersBackend", "Gemma3ForCausalLM",
                     "Gemma3TextConfig", "DynamicCache", "TextIteratorStreamer", "StoppingCriteria",
                     "StoppingCriteriaList", "PreTrainedTokenizerFast"),
    "peft": ("PeftModel", "LoraConfig", "get_peft_model"),
    "safetensors.torch": ("load", "save"),
    "sacrebleu": ("corpus_chrf",),
    "xxhash": ("xxh3_128",),
}


def import_heavy_libraries() -> None:
    """Import torch, transformers, peft and friends fully, resolving every symbol the app uses."""

    import torch  # noqa: F401 - first, as transformers and peft import it anyway

    for module, names in HEAVY_SYMBOLS.items():
        mod = importlib.import_module(module)
        for name in names:
            getattr(mod, name)
