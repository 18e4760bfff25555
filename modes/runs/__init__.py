"""Runs: every learner's runs and curves (history), starting and following a training (follow), the
training slot and stop flags (jobs), and results shared between learners or replayed (reuse).
"""
