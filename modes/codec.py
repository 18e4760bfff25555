"""Dataclasses as data, never as code: a JSON form for the registered (`recordable`) dataclasses, with
their bytes kept apart in a safetensors file. Recorded trainings are stored this way (modes/runs/reuse.py):
a file from disk decodes only into the registered classes, so a shared folder cannot carry code the way
a pickle can.
"""

from __future__ import annotations

import importlib
from dataclasses import fields, is_dataclass
from pathlib import Path

_TYPES: dict[str, type] = {}  # the dataclasses a recording on disk may decode into, by name


def recordable(cls):
    """Register a dataclass that recordings may hold (a class decorator): only these decode from disk."""
    _TYPES[_name(cls)] = cls
    return cls


def _name(cls) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _registered(name: str):
    """The registered class of that name. A class of the app's own package whose module is not imported yet
    (a result read back at start-up) is registered by importing that module; nothing else is imported."""
    if name not in _TYPES and name.startswith("modes.") and "." in name:
        module = name.rsplit(".", 1)[0]
        if all(part.isidentifier() for part in module.split(".")):
            try:
                importlib.import_module(module)
            except ImportError:
                return None
    return _TYPES.get(name)


def encode(value, blobs: dict):
    """A value as JSON-able data: dataclasses by registered name, bytes moved into `blobs` (name -> bytes)."""
    if is_dataclass(value) and not isinstance(value, type):
        name = _name(type(value))
        if _TYPES.get(name) is not type(value):
            raise TypeError(f"{name} is not registered as recordable")
        return {"__type__": name, **{f.name: encode(getattr(value, f.name), blobs) for f in fields(value)}}
    if isinstance(value, bytes):
        if not value:
            return {"__bytes__": ""}  # empty bytes need no blob (a result whose adapter lives on disk)
        key = f"b{len(blobs)}"
        blobs[key] = value
        return {"__bytes__": key}
    if isinstance(value, (list, tuple)):
        return [encode(v, blobs) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("recordings keep dicts with string keys only")
        return {k: encode(v, blobs) for k, v in value.items()}
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot record a {type(value).__name__}")


def decode(data, blobs: dict):
    """The inverse of `encode`; an unregistered type name or a missing blob raises ValueError."""
    if isinstance(data, list):
        return [decode(v, blobs) for v in data]
    if isinstance(data, dict):
        if "__bytes__" in data:
            if data["__bytes__"] == "":
                return b""
            if data["__bytes__"] not in blobs:
                raise ValueError("a recording names bytes it does not have")
            return blobs[data["__bytes__"]]
        if "__type__" in data:
            cls = _registered(str(data["__type__"]))
            if cls is None:
                raise ValueError(f"not a recordable type: {data['__type__']!r}")
            known = {f.name for f in fields(cls)}
            return cls(**{k: decode(v, blobs) for k, v in data.items() if k in known})
        return {k: decode(v, blobs) for k, v in data.items()}
    return data


def blobs_to_file(blobs: dict, path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({k: torch.frombuffer(bytearray(v), dtype=torch.uint8) if v else torch.zeros(0, dtype=torch.uint8)
               for k, v in blobs.items()}, str(path))


def blobs_from_file(path: Path) -> dict:
    from safetensors.torch import load_file

    return {k: t.numpy().tobytes() for k, t in load_file(str(path)).items()}


def blobs_to_bytes(blobs: dict) -> bytes:
    """The same safetensors layout as blobs_to_file, as bytes (a database column)."""
    import torch
    from safetensors.torch import save

    return save({k: torch.frombuffer(bytearray(v), dtype=torch.uint8) if v else torch.zeros(0, dtype=torch.uint8)
                 for k, v in blobs.items()})


def blobs_from_bytes(data: bytes) -> dict:
    from safetensors.torch import load

    return {k: t.numpy().tobytes() for k, t in load(bytes(data)).items()}
