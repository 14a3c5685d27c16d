"""Inference: export a trained run, load it as a SpeechBrain ``Pretrained``
recognizer, predict files from Python or the shell, ASR for missing
transcripts."""

from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer

__all__ = ["MultimodalEmotionRecognizer"]
