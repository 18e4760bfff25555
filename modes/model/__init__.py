"""The model: the one loader (sources, devices, dtypes, caching), the embedded Gemma 3 270M, and
LoRA adapters as files and as served models.
"""
