"""The in-context tab: few-shot translation and the "how many examples?" sweep; no weight changes.
`config`, `core` (compute, no Gradio), `tab` (UI, handlers, TAB).
"""
