"""Neural building blocks: refinement, fusion, modality masking, heads."""

from speechbrain_mtmm.nnet.fusion import (
    BridgeTokenFusion,
    CrossAttentionFusion,
    PooledFusion,
)
from speechbrain_mtmm.nnet.heads import EmotionHeads
from speechbrain_mtmm.nnet.layer_sum import WeightedLayerSum
from speechbrain_mtmm.nnet.masking import (
    RandomModalityMasking,
    masked_modality_features,
)
from speechbrain_mtmm.nnet.mmer import MMERFusion
from speechbrain_mtmm.nnet.model import MultimodalEmotionModel
from speechbrain_mtmm.nnet.refinement import SelfAttentionRefinement

__all__ = [
    "BridgeTokenFusion",
    "CrossAttentionFusion",
    "EmotionHeads",
    "MMERFusion",
    "MultimodalEmotionModel",
    "PooledFusion",
    "RandomModalityMasking",
    "SelfAttentionRefinement",
    "WeightedLayerSum",
    "masked_modality_features",
]
