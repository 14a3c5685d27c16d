"""Inference: export a trained run, load it as a SpeechBrain ``Pretrained``
recognizer, predict files from Python or the shell, ASR for missing
transcripts.

Its public name resolves on first use (:mod:`speechbrain_mtmm.lazy`), so
that :mod:`.model_source` is read without the recognizer's imports."""

from speechbrain_mtmm.lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(
    __name__,
    {"MultimodalEmotionRecognizer": "speechbrain_mtmm.inference.recognizer"},
)

__all__ = ["MultimodalEmotionRecognizer"]
