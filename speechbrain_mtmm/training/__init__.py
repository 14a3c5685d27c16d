"""Training: losses, metrics, atomic checkpoints, the feature cache, the
data pipelines and speed counters of a fold."""
