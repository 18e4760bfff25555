"""How Models Learn's code: a package per tab, and the shared packages below them.

- pretrain/, finetune/, incontext/, scoreboard/, classboard/: one tab each (config.py, core.py, tab.py; the class
  board's compute is board.py); a tab never imports another.
- serving/: the one generation engine (batching across learners), row-wise attention, packed linears, precision, proof.
- model/: the one model loader, the embedded Gemma 3 270M, LoRA adapters as files and served models.
- runs/: every learner's runs and curves, classes, following a training, the training slot, shared and replayed results.
- data/: the EN/KO translation task and its prompt, the pre-training corpus, safe uploads.
- tabs.py: the registry the page is built from; context.py: the app state the tabs share (made once, passed in).
- ui.py: strings, endpoint guard; fields.py: bounded config fields (the one validation path); metrics.py; codec.py.
Imports point one way: tabs -> runs -> model -> serving -> data (tests/test_layout.py).
"""
