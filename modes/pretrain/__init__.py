"""The pre-training tab: next-token loss on any text and a tiny model trained from scratch.
`config` (settings, no torch), `core` (compute, no Gradio), `optim` (Muon + AdamW), `tab` (UI, handlers, TAB).
"""
