"""Experiments on top of recipe runs: cross-validation sweeps, the paper's
ablation table, aggregation over folds and seeds, reports."""
