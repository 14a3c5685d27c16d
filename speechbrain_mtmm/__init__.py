"""speechbrain-mtmm: multi-task, multi-modal speech emotion recognition."""

__version__ = "0.1.0"
