"""Estimators: ``fit()`` and ``ScalingFit``, the Huber fits and bootstrap, the NumPyro
model, NUTS and its diagnostics."""
