"""speechbrain-mtmm: multi-task, multi-modal speech emotion recognition.

Audio + transcript in, emotion classes + valence/arousal out, on top of
SpeechBrain. The first system is Ispas et al. (ICMI 2023).

Layers, each importing only those below it (``tests/test_layout.py``
checks this)::

    cli                         the ``mtmm`` command
    demo                        ``mtmm demo``: a recipe on a synthetic corpus
    testing                     tiny models and recipe commands for tests
    serving                     ``mtmm serve``: HTTP API, web page
    sharing                     export folders, model cards, ONNX graphs
    experiments | inference     sweeps, reports | recognizer, ONNX runtime
    training                    losses, metrics, checkpoints, cache, speed
    system                      the whole model, described once
    encoders                    audio/text encoders
    nnet | data                 blocks that know nothing of files | corpora
    run_folder                  file names, rating scales, digests
    atomic, locks, plain_yaml   atomic writes, locks, YAML read as data,
    quiet                       third-party chatter filtered

Inside each subpackage its modules are layered too.
"""

from speechbrain_mtmm.nnet import (
    BridgeTokenFusion,
    CrossAttentionFusion,
    EmotionHeads,
    MMERFusion,
    MultimodalEmotionModel,
    PooledFusion,
    RandomModalityMasking,
    SelfAttentionRefinement,
    WeightedLayerSum,
    masked_modality_features,
)
from speechbrain_mtmm.system import MultimodalEmotionSystem
from speechbrain_mtmm.training.auxiliary_losses import AuxiliaryObjectives
from speechbrain_mtmm.training.losses import MultiTaskLoss, ccc
from speechbrain_mtmm.training.metrics import (
    CCCStats,
    EmotionClassificationStats,
)

__version__ = "0.2.1"

__all__ = [
    "AuxiliaryObjectives",
    "BridgeTokenFusion",
    "CCCStats",
    "CrossAttentionFusion",
    "EmotionClassificationStats",
    "EmotionHeads",
    "MMERFusion",
    "MultiTaskLoss",
    "MultimodalEmotionModel",
    "MultimodalEmotionSystem",
    "PooledFusion",
    "RandomModalityMasking",
    "SelfAttentionRefinement",
    "WeightedLayerSum",
    "ccc",
    "masked_modality_features",
]
