"""Inference: export a trained run, load it as a SpeechBrain ``Pretrained``
recognizer, predict files from Python or the shell, ASR for missing
transcripts.

Its public name resolves on first use (:mod:`speechbrain_mtmm.lazy`), so
that :mod:`.model_source` is read without the recognizer's imports."""

from typing import TYPE_CHECKING

from speechbrain_mtmm.lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (PEP 562)
    from speechbrain_mtmm.inference.recognizer import (
        MultimodalEmotionRecognizer,
    )

__getattr__, __dir__ = lazy_exports(__name__)

__all__ = ["MultimodalEmotionRecognizer"]
