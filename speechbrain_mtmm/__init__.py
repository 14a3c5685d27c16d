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
    quiet, lazy                 third-party chatter filtered, public
                                names imported on first use

The public names below resolve on first use (PEP 562), so ``import
speechbrain_mtmm`` and ``mtmm --help`` load no torch.

Inside each subpackage its modules are layered too.
"""

from typing import TYPE_CHECKING

from speechbrain_mtmm.lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (PEP 562): the package, and the
    # mtmm command under it, load no torch
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

__getattr__, __dir__ = lazy_exports(__name__)

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
