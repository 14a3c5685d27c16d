"""What ``GET /v1/model`` says of the served model.

Read from the loaded recognizer (labels, dimensions and their rating
scale, modalities, encoders: the outputs the model was trained for only)
and from the export's ``export_info.json`` and model card (``README.md``:
its title and first paragraph), fetched like the model's other files.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import re

from speechbrain_mtmm.encoders import MODALITIES
from speechbrain_mtmm.inference.loading import ExportLoadError, fetch_file
from speechbrain_mtmm.run_folder import (
    EXPORT_INFO,
    RATING_SCALE,
    classes_trained,
    rating_key,
    trained_dimensions,
)

MODEL_CARD = "README.md"


def card_summary(text):
    """The title and first paragraph of a model card.

    Arguments
    ---------
    text : str
        The card (Markdown, with or without YAML front matter).

    Returns
    -------
    dict
        ``title`` and ``summary`` (None when absent).

    Example
    -------
    >>> card_summary("---\\ntags: [a]\\n---\\n# A model\\n\\nIt reads\\n"
    ...              "speech.\\n\\n## Use\\n")
    {'title': 'A model', 'summary': 'It reads speech.'}
    """
    body = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.S)
    title = re.search(r"^# (.+)$", body, flags=re.M)
    after = body[title.end() :] if title else body
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", after)]
    first = next((p for p in paragraphs if p and p[0] not in "#`|-"), None)
    return {
        "title": title.group(1).strip() if title else None,
        "summary": " ".join(first.split()) if first else None,
    }


def _read_export_file(source, name):
    """The text of one file of the export, or None."""
    try:
        return fetch_file(source, name).read_text(encoding="utf-8")
    except (ExportLoadError, OSError, UnicodeDecodeError):
        return None


def model_info(recognizer, source, backend):
    """The served model, as ``GET /v1/model`` answers it.

    Arguments
    ---------
    recognizer : MultimodalEmotionRecognizer
        The loaded model.
    source : str
        Its folder or hub id.
    backend : str
        ``torch``, ``onnx`` or ``onnx-int8``.

    Returns
    -------
    dict
        ``labels`` (empty: not trained to predict classes),
        ``dimensions``, ``rating_scale``, ``rating_keys`` (the keys of the
        dimensions on that scale in a prediction), ``modalities``,
        ``encoders``, ``sample_rate``, ``window_seconds`` (longer audio
        is split into windows of at most this length), ``asr_source``,
        ``backend``, ``export`` (checkpoint, date, validation score),
        ``card`` (title and summary) and ``centroids`` (None: exports do
        not record the classes' mean ratings).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> config = {"labels": ["neu", "hap"], "modalities": ["audio"],
    ...           "loss_weights": {"classes": 1, "valence": 1},
    ...           "n_dims": 2, "rating_scale": [1, 7], "sample_rate": 16000,
    ...           "audio": {"source": "fbank"}}
    >>> recognizer = SimpleNamespace(
    ...     system=SimpleNamespace(config=config), labels=["neu", "hap"],
    ...     hparams=SimpleNamespace(max_audio_seconds=10))
    >>> folder = str(getfixture("tmp_path"))  # no export_info.json, no card
    >>> info = model_info(recognizer, folder, "onnx")
    >>> info["dimensions"], info["rating_keys"], info["encoders"]
    (['valence'], {'valence': 'valence_1to7'}, {'audio': 'fbank'})
    >>> info["labels"], info["card"]
    (['neu', 'hap'], None)
    """
    config = recognizer.system.config
    scale = list(config.get("rating_scale", RATING_SCALE))
    dimensions = list(trained_dimensions(config))
    info = json.loads(_read_export_file(source, EXPORT_INFO) or "{}")
    card = _read_export_file(source, MODEL_CARD)
    validation = info.get("validation") or {}
    return {
        "labels": list(recognizer.labels) if classes_trained(config) else [],
        "dimensions": dimensions,
        "rating_scale": scale,
        "rating_keys": {d: rating_key(d, scale) for d in dimensions},
        "modalities": list(config.get("modalities", MODALITIES)),
        "encoders": {m: config[m]["source"] for m in MODALITIES if m in config},
        "sample_rate": config.get("sample_rate"),
        "window_seconds": recognizer.hparams.max_audio_seconds,
        "asr_source": getattr(recognizer.hparams, "asr_source", None),
        "backend": backend,
        "export": {
            "checkpoint": info.get("checkpoint"),
            "exported": info.get("exported"),
            "validation_score": validation.get("score"),
        },
        "card": card_summary(card) if card else None,
        "centroids": None,
    }
