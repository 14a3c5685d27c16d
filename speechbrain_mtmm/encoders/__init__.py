"""Audio and text encoders with one interface (see :mod:`.base`).

:func:`build_encoder` is the one builder used by training, the feature
cache and inference alike: a ``source`` of ``"fbank"`` / ``"hashing"``
picks the light pair trained from scratch (:mod:`.light`), anything else
is a HuggingFace hub id or local folder (:mod:`.huggingface`); an audio
source whose config is a Whisper one (``openai/whisper-*``, or a folder
with ``model_type: whisper``) gets Whisper's encoder (:mod:`.whisper`).

A frozen light encoder draws its weights with a fixed seed
(:data:`LIGHT_SEED`), as a frozen pretrained encoder has its published
weights: it is rebuilt identically from its configuration, so checkpoints
leave it out (as they leave out every frozen encoder) and the run still
exports. A trainable one starts from the run's random state, and its
weights go into the checkpoint.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import torch

from speechbrain_mtmm.encoders.base import (
    FREEZE_POLICIES,
    LIGHT_SIZE,
    MAX_TOKENS,
    Encoder,
    EncoderError,
)
from speechbrain_mtmm.encoders.huggingface import HFAudioEncoder, HFTextEncoder
from speechbrain_mtmm.encoders.light import (
    FbankAudioEncoder,
    HashingTokenizer,
    TokenEmbeddingTextEncoder,
)
from speechbrain_mtmm.encoders.whisper import WhisperAudioEncoder, is_whisper

MODALITIES = ("audio", "text")
LIGHT_SOURCES = {"audio": "fbank", "text": "hashing"}
#: The seed of the light encoders' initial weights
LIGHT_SEED = 0

__all__ = [
    "FREEZE_POLICIES",
    "LIGHT_SEED",
    "LIGHT_SIZE",
    "LIGHT_SOURCES",
    "MAX_TOKENS",
    "MODALITIES",
    "Encoder",
    "EncoderError",
    "FbankAudioEncoder",
    "HFAudioEncoder",
    "HFTextEncoder",
    "HashingTokenizer",
    "TokenEmbeddingTextEncoder",
    "WhisperAudioEncoder",
    "build_encoder",
]


def build_encoder(
    modality,
    source,
    freeze="paper",
    save_path=None,
    pretrained=True,
    light_size=LIGHT_SIZE,
    max_length=MAX_TOKENS,
    sample_rate=16000,
):
    """The encoder of one modality, chosen by ``source``.

    Arguments
    ---------
    modality : str
        ``"audio"`` or ``"text"``.
    source : str
        ``"fbank"`` (audio) / ``"hashing"`` (text) for the light pair,
        otherwise a HF hub id or local folder (a Whisper checkpoint:
        :class:`WhisperAudioEncoder`).
    freeze : str
        ``"paper"``, ``"frozen"`` or ``"trainable"``.
    save_path : str, optional
        HF download cache (HF encoders).
    pretrained : bool
        Load the pretrained HF weights (False: build from the config, the
        weights then come from a checkpoint).
    light_size : int
        Width of the light encoders.
    max_length : int
        Tokens kept per transcript (text encoders).
    sample_rate : int
        Sample rate of the waveforms (the light audio encoder; Whisper
        checks it against its feature extractor's).

    Returns
    -------
    Encoder

    Example
    -------
    >>> build_encoder("audio", "fbank", light_size=16).output_size
    16
    >>> build_encoder("text", "hashing", light_size=8).tokenize("Hi").tolist()
    [1, 1284]
    >>> one, two = (build_encoder("audio", "fbank", freeze="frozen")
    ...             for _ in range(2))
    >>> one.fingerprint() == two.fingerprint()
    True
    """
    if modality not in MODALITIES:
        raise EncoderError(f"modality must be one of {MODALITIES}: {modality}")
    source = str(source)
    if source == LIGHT_SOURCES.get(modality):
        if freeze != "frozen":
            return _light(modality, light_size, freeze, sample_rate, max_length)
        # the same weights every time, the caller's random state left as
        # it was
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(LIGHT_SEED)
            return _light(modality, light_size, freeze, sample_rate, max_length)
    if modality == "audio" and is_whisper(source, save_path):
        return WhisperAudioEncoder(
            source,
            save_path=save_path,
            freeze=freeze,
            pretrained=pretrained,
            sample_rate=sample_rate,
        )
    if modality == "audio":
        return HFAudioEncoder(
            source, save_path=save_path, freeze=freeze, pretrained=pretrained
        )
    return HFTextEncoder(
        source,
        save_path=save_path,
        freeze=freeze,
        max_length=max_length,
        pretrained=pretrained,
    )


def _light(modality, light_size, freeze, sample_rate, max_length):
    if modality == "audio":
        return FbankAudioEncoder(
            d_model=light_size, sample_rate=sample_rate, freeze=freeze
        )
    return TokenEmbeddingTextEncoder(
        d_model=light_size, max_length=max_length, freeze=freeze
    )
