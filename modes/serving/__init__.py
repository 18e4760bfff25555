"""Serving: the one generation engine (continuous batching across learners), its rows and KV,
row-wise attention and packed linears (a row decodes the same alone and batched), the served
precision, and the weights proof.
"""
