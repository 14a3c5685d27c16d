"""A synthetic "any corpus" in the CSV-manifest format, for tests and demos
of ``mtmm prepare csv --manifest corpus.csv``.

Writes ``<out>/csv_corpus/`` with ``wavs/<speaker>/<utt>.wav`` (16 kHz mono
16-bit, the voices of :mod:`.synthetic`: words carry valence, prosody
arousal) and ``corpus.csv``, whose header and columns are, in order::

    path,text,label[,valence,arousal,dominance][,speaker][,split]

``path`` is relative to the folder of the CSV, ``label`` is one of the
corpus' own names (:data:`LABELS`), the ratings are on any ``scale`` (two
decimals) and ``split`` holds ``train``, ``valid`` or ``test`` with whole
speakers per split. Every speaker has every label, so speaker-level folds
see every class, and some transcripts hold a comma and double quotes, so
the reader must honour the CSV quoting. The content (audio, texts, labels,
ratings, speakers' splits) only depends on the seed and the sizes: the
optional columns change what is written, not what is drawn. Returns what it
wrote, so tests compare a preparation with it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv
import os
from pathlib import Path

import numpy as np
import torch
from speechbrain.dataio import audio_io

from speechbrain_mtmm.data.synthetic import (
    SAMPLE_RATE,
    make_sentence,
    synthesize_utterance,
)
from speechbrain_mtmm.run_folder import DIMENSIONS

CORPUS_DIRNAME = "csv_corpus"
MANIFEST_NAME = "corpus.csv"
LABELS = ("neutral", "happy", "sad", "angry")
# (valence, arousal) levels of each label, as the IEMOCAP generator does
DESIGN = {
    "neutral": ("neutral", "medium"),
    "happy": ("positive", "high"),
    "sad": ("negative", "low"),
    "angry": ("negative", "high"),
}
# Centre of the ratings of a level, as a fraction of the scale's range
CENTRE = {
    "negative": 0.25,
    "neutral": 0.5,
    "positive": 0.75,
    "low": 0.25,
    "medium": 0.5,
    "high": 0.75,
}
NOISE = 0.08  # standard deviation of the ratings, fraction of the range
SPLIT_SHARES = (("train", 0.6), ("valid", 0.2), ("test", 0.2))
QUOTED_EVERY = 3  # every third utterance of a speaker is quoted speech


def _speaker_splits(rng, speakers):
    """Whole speakers per split: at least one each, about 60/20/20."""
    n_valid, n_test = (
        max(1, int(share * len(speakers) + 0.5))
        for _, share in SPLIT_SHARES[1:]
    )
    order = [speakers[i] for i in rng.permutation(len(speakers))]
    names = [name for name, _ in SPLIT_SHARES]
    counts = (len(speakers) - n_valid - n_test, n_valid, n_test)
    splits = {}
    for name, count in zip(names, counts):
        splits.update({speaker: name for speaker in order[:count]})
        order = order[count:]
    return splits


def _speaker_labels(rng, count):
    """Every label once (cycled), the rest drawn, in a random order."""
    labels = list(LABELS) + [
        str(label) for label in rng.choice(LABELS, count - len(LABELS))
    ]
    return [labels[i] for i in rng.permutation(count)]


def _ratings(rng, label, scale):
    """Valence, arousal and dominance of a label on ``scale`` (2 decimals)."""
    low, high = scale
    valence, arousal = DESIGN[label]
    ratings = {}
    for name, level in zip(DIMENSIONS, (valence, arousal, arousal)):
        value = low + (high - low) * (CENTRE[level] + rng.normal(0, NOISE))
        ratings[name] = float(np.clip(round(value, 2), low, high))
    return ratings


def _text(rng, valence, quoted):
    """A transcript; quoted ones hold a comma and double quotes."""
    sentence = make_sentence(rng, valence)
    if quoted:
        return f'Then, she said "{sentence}"'
    return sentence


def generate_synthetic_csv_corpus(
    out,
    n_speakers=6,
    per_speaker=6,
    seed=0,
    seconds=(1.0, 2.0),
    dimensions=True,
    split=False,
    speakers=True,
    scale=(1, 5),
):
    """Writes a synthetic corpus with a CSV manifest.

    Arguments
    ---------
    out : str or os.PathLike
        Parent folder of ``csv_corpus/``.
    n_speakers : int
        Speakers (``spk01``, ``spk02``, ...); at least 3 with ``split``.
    per_speaker : int
        Utterances per speaker; at least ``len(LABELS)``.
    seed : int
        Random seed; the same seed gives byte-identical files.
    seconds : tuple of float
        Range of utterance durations.
    dimensions : bool
        Whether to write the ``valence,arousal,dominance`` columns.
    split : bool
        Whether to write a ``split`` column (``train``/``valid``/``test``,
        whole speakers per split).
    speakers : bool
        Whether to write a ``speaker`` column.
    scale : tuple of float
        (lowest, highest) rating.

    Returns
    -------
    dict
        ``{utt: {"path" (absolute), "text", "label", "valence", "arousal",
        "dominance" (absent without ``dimensions``), "speaker" (None
        without ``speakers``), "split" (None without ``split``),
        "seconds"}}``.

    Example
    -------
    >>> out = getfixture("tmp_path")
    >>> written = generate_synthetic_csv_corpus(out, 3, 4, split=True)
    >>> len(written), sorted({w["split"] for w in written.values()})
    (12, ['test', 'train', 'valid'])
    >>> manifest = out / CORPUS_DIRNAME / MANIFEST_NAME
    >>> manifest.read_text().splitlines()[0]
    'path,text,label,valence,arousal,dominance,speaker,split'
    """
    if n_speakers < (3 if split else 1):
        raise ValueError(
            f"n_speakers={n_speakers} is too small "
            f"({'3 with split' if split else 'at least 1'})"
        )
    if per_speaker < len(LABELS):
        raise ValueError(
            f"per_speaker={per_speaker} is too small: every speaker needs "
            f"each of the {len(LABELS)} labels"
        )
    if not scale[0] < scale[1]:
        raise ValueError(f"scale={scale} must be (lowest, highest)")
    rng = np.random.default_rng(seed)
    root = Path(out) / CORPUS_DIRNAME
    names = [f"spk{i + 1:02d}" for i in range(n_speakers)]
    voices = {
        name: (rng.uniform(0.95, 1.05), rng.uniform(-0.15, 0.15))
        for name in names
    }
    # drawn whatever the columns, so they only change what is written
    splits = _speaker_splits(rng, names) if n_speakers >= 3 else {}
    header = ["path", "text", "label"]
    header += list(DIMENSIONS) if dimensions else []
    header += ["speaker"] if speakers else []
    header += ["split"] if split else []
    rows = []
    written = {}
    for speaker in names:
        (root / "wavs" / speaker).mkdir(parents=True, exist_ok=True)
        labels = _speaker_labels(rng, per_speaker)
        for index, label in enumerate(labels):
            utt = f"{speaker}_{index + 1:04d}"
            valence, arousal = DESIGN[label]
            duration = float(rng.uniform(*seconds))
            wav = synthesize_utterance(rng, arousal, duration, voices[speaker])
            relative = f"wavs/{speaker}/{utt}.wav"
            audio_io.save(
                str(root / relative),
                torch.from_numpy(wav.astype(np.float32) / 32768.0)[None],
                SAMPLE_RATE,
                subtype="PCM_16",
            )
            text = _text(rng, valence, index % QUOTED_EVERY == 1)
            ratings = _ratings(rng, label, scale)
            row = [relative, text, label]
            row += [ratings[name] for name in DIMENSIONS] if dimensions else []
            row += [speaker] if speakers else []
            row += [splits[speaker]] if split else []
            rows.append(row)
            written[utt] = {
                "path": os.path.abspath(root / relative),
                "text": text,
                "label": label,
                **(ratings if dimensions else {}),
                "speaker": speaker if speakers else None,
                "split": splits[speaker] if split else None,
                "seconds": len(wav) / SAMPLE_RATE,
            }
    with open(root / MANIFEST_NAME, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return written
