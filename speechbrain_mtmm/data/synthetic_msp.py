"""A synthetic corpus in the MSP-Podcast release layout, for tests, demos
and the preparation benchmark (the real release is licensed).

Writes ``<out>/MSP-PODCAST/`` with ``Labels/labels_consensus.csv`` (the
release's header), ``Audios/*.wav`` (16 kHz mono 16-bit, the voices of
:mod:`.synthetic`: words carry valence, prosody arousal) and
``Transcripts/<utt>.txt``. Speakers are split between Train, Development,
Test1 and Test2 as the release aims to; Test3 files are named
``MSP-PODCAST_test3_NNNN.wav``, have no labels and no transcripts, and a
few labelled utterances lack a transcript as in the release. Returns what
it wrote, so tests compare a preparation with it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import csv
from pathlib import Path

import numpy as np
import torch
from speechbrain.dataio import audio_io

from speechbrain_mtmm.data.msp_podcast import COLUMNS
from speechbrain_mtmm.data.synthetic import (
    SAMPLE_RATE,
    make_sentence,
    synthesize_utterance,
)

RELEASE_DIRNAME = "MSP-PODCAST"
# (valence, arousal) levels of each code, as the IEMOCAP generator does
DESIGN = {
    "A": ("negative", "high"),
    "S": ("negative", "low"),
    "H": ("positive", "high"),
    "U": ("positive", "high"),
    "F": ("negative", "high"),
    "D": ("negative", "medium"),
    "C": ("negative", "medium"),
    "N": ("neutral", "medium"),
    "O": ("neutral", "low"),
    "X": ("neutral", "medium"),
}
CENTRE = {
    "negative": 2.5,
    "neutral": 4.0,
    "positive": 5.5,
    "low": 2.5,
    "medium": 4.0,
    "high": 5.5,
}
SPLIT_SHARES = (
    ("Train", 0.6),
    ("Development", 0.15),
    ("Test1", 0.15),
    ("Test2", 0.05),
    ("Test3", 0.05),
)


def generate_synthetic_msp_podcast(
    out, n_utterances=120, seed=0, seconds=(1.0, 2.0), missing_text=0.03
):
    """Writes a synthetic MSP-Podcast release.

    Arguments
    ---------
    out : str or os.PathLike
        Parent folder of ``MSP-PODCAST/``.
    n_utterances : int
        Files written (all splits).
    seed : int
        Random seed.
    seconds : tuple of float
        Range of utterance durations.
    missing_text : float
        Fraction of labelled utterances written without a transcript.

    Returns
    -------
    dict
        ``{utt: {"split", "code", "valence", "arousal", "dominance",
        "speaker", "gender", "text" (None when not written), "seconds"}}``.

    Example
    -------
    >>> written = generate_synthetic_msp_podcast(getfixture("tmp_path"), 20)
    >>> len(written), sorted({w["split"] for w in written.values()})[:2]
    (20, ['Development', 'Test1'])
    """
    rng = np.random.default_rng(seed)
    root = Path(out) / RELEASE_DIRNAME
    for folder in ("Audios", "Labels", "Transcripts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    counts = [
        max(1, int(round(share * n_utterances))) for _, share in SPLIT_SHARES
    ]
    counts[0] += n_utterances - sum(counts)
    written = {}
    rows = []
    speaker_id = 100
    for (split, _), count in zip(SPLIT_SHARES, counts):
        # 2-4 speakers of its own per split (Test3: unknown to the labels)
        speakers = [speaker_id + i for i in range(int(rng.integers(2, 5)))]
        speaker_id += len(speakers)
        for index in range(count):
            number = len(written) + 1
            utt = (
                f"MSP-PODCAST_test3_{index + 1:04d}"
                if split == "Test3"
                else f"MSP-PODCAST_{number // 100 + 1:04d}_{number:04d}"
            )
            code = str(rng.choice(list(DESIGN)))
            valence, arousal = DESIGN[code]
            duration = float(rng.uniform(*seconds))
            speaker = int(rng.choice(speakers))
            gender = "Female" if speaker % 2 else "Male"
            wav = synthesize_utterance(
                rng, arousal, duration, (1.0 + 0.01 * (speaker % 5), 0.0)
            )
            audio_io.save(
                str(root / "Audios" / f"{utt}.wav"),
                torch.from_numpy(wav.astype(np.float32) / 32768.0)[None],
                SAMPLE_RATE,
                subtype="PCM_16",
            )
            text = None
            if split != "Test3" and rng.random() >= missing_text:
                text = make_sentence(rng, valence)
                (root / "Transcripts" / f"{utt}.txt").write_text(text + "\n")
            ratings = {
                name: round(
                    float(np.clip(CENTRE[level] + rng.normal(0, 0.4), 1, 7)), 1
                )
                for name, level in (
                    ("arousal", arousal),
                    ("valence", valence),
                    ("dominance", arousal),
                )
            }
            labelled = split != "Test3"
            rows.append(
                [
                    f"{utt}.wav",
                    code if labelled else "",
                    ratings["arousal"] if labelled else "",
                    ratings["valence"] if labelled else "",
                    ratings["dominance"] if labelled else "",
                    speaker if labelled else "Unknown",
                    gender,
                    split,
                ]
            )
            written[utt] = {
                "split": split,
                "code": code if labelled else None,
                **{k: (v if labelled else None) for k, v in ratings.items()},
                "speaker": str(speaker) if labelled else "Unknown",
                "gender": gender,
                "text": text,
                "seconds": len(wav) / SAMPLE_RATE,
            }
    with open(root / "Labels" / "labels_consensus.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return written
