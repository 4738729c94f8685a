"""Batched solvers shared by the estimators and the planning tools (private)."""
