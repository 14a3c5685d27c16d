"""speechbrain-mtmm: multi-task, multi-modal speech emotion recognition.

Audio + transcript in, emotion classes + valence/arousal out, on top of
SpeechBrain. The first system is Ispas et al. (ICMI 2023).
"""

from speechbrain_mtmm.losses import MultiTaskLoss, ccc
from speechbrain_mtmm.metrics import CCCStats, EmotionClassificationStats
from speechbrain_mtmm.nnet import (
    BridgeTokenFusion,
    CrossAttentionFusion,
    EmotionHeads,
    MultimodalEmotionModel,
    PooledFusion,
    RandomModalityMasking,
    SelfAttentionRefinement,
    WeightedLayerSum,
    masked_modality_features,
)

__version__ = "0.1.0"

__all__ = [
    "BridgeTokenFusion",
    "CCCStats",
    "CrossAttentionFusion",
    "EmotionClassificationStats",
    "EmotionHeads",
    "MultiTaskLoss",
    "MultimodalEmotionModel",
    "PooledFusion",
    "RandomModalityMasking",
    "SelfAttentionRefinement",
    "WeightedLayerSum",
    "ccc",
    "masked_modality_features",
]
