"""The fine-tune tab: LoRA on EN/KO pairs, with proof that only the adapter changed.
`config`, `core` (training and scoring), `offtask` (the price elsewhere), `report` (the card's text),
`export` (a standalone script), `tab` (UI, handlers, TAB).
"""
