"""Audio and text encoders with one interface (see :mod:`.base`).

:func:`build_encoder` is the one builder used by training, the feature
cache and inference alike: a ``source`` of ``"fbank"`` / ``"hashing"``
picks the light pair trained from scratch (:mod:`.light`), anything else
is a HuggingFace hub id or local folder (:mod:`.huggingface`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

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

MODALITIES = ("audio", "text")
LIGHT_SOURCES = {"audio": "fbank", "text": "hashing"}

__all__ = [
    "FREEZE_POLICIES",
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
        otherwise a HF hub id or local folder.
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
        Sample rate of the waveforms (the light audio encoder).

    Returns
    -------
    Encoder

    Example
    -------
    >>> build_encoder("audio", "fbank", light_size=16).output_size
    16
    >>> build_encoder("text", "hashing", light_size=8).tokenize("Hi").tolist()
    [1, 1284]
    """
    if modality not in MODALITIES:
        raise EncoderError(f"modality must be one of {MODALITIES}: {modality}")
    source = str(source)
    if modality == "audio":
        if source == LIGHT_SOURCES["audio"]:
            return FbankAudioEncoder(
                d_model=light_size, sample_rate=sample_rate, freeze=freeze
            )
        return HFAudioEncoder(
            source, save_path=save_path, freeze=freeze, pretrained=pretrained
        )
    if source == LIGHT_SOURCES["text"]:
        return TokenEmbeddingTextEncoder(
            d_model=light_size, max_length=max_length, freeze=freeze
        )
    return HFTextEncoder(
        source,
        save_path=save_path,
        freeze=freeze,
        max_length=max_length,
        pretrained=pretrained,
    )
