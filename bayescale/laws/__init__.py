"""Scaling laws: the law concept, its kernels, and the shipped families."""
