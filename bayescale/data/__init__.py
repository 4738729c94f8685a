"""Training runs: loading and validation, the dataset registry, synthetic runs."""
