"""The client's real address, behind a proxy or not: the one helper every rate limit and log asks.

- On a Hugging Face Space (the platform sets SPACE_ID), every request arrives from the platform's proxy, an
  internal address that is the same for every visitor. The proxy appends the address it received the
  request from to X-Forwarded-For, so the last entry is the client's; entries before it are whatever the
  client sent (forgeable) and are never read.
- Elsewhere, uvicorn (under Gradio) already replaces the peer with the X-Forwarded-For client when the peer
  is a proxy it trusts (FORWARDED_ALLOW_IPS, default 127.0.0.1): that is the address used. A forged header
  from any other peer changes nothing, because uvicorn ignores it and so does this.
"""

from __future__ import annotations

import ipaddress
import os


def on_space() -> bool:
    return bool(os.environ.get("SPACE_ID"))


def client_address(request) -> str:
    """The address to count a client by ("" when there is no request: an in-process call)."""
    peer = str(getattr(getattr(request, "client", None), "host", "") or "")
    if not on_space():
        return peer
    try:
        forwarded = request.headers.get("x-forwarded-for") or ""
    except Exception:  # a request without headers
        forwarded = ""
    last = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(last))  # the proxy's own entry: a real address, never free text
    except ValueError:
        return peer
