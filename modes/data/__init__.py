"""Data shared by the tabs: the EN/KO translation task and its prompt (translation), raw text for
pre-training (corpus), and safe reading of uploads and Hub datasets (uploads).
"""
