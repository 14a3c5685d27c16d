"""A small synthetic corpus shaped exactly like the IEMOCAP release.

It lets the whole pipeline (preparation, folds, training, evaluation) run
without the real data, and it is built so that fusing audio and text matters:

* the words carry valence (positive / neutral / negative word lists);
* the prosody carries arousal: voiced "syllables" (harmonic tones with an
  envelope and a glide, plus a little noise) whose pitch, loudness, spectral
  tilt and rate rise with arousal (low: f0 100-130 Hz, quiet, slow; high:
  f0 220-300 Hz, loud, fast).

The kept classes follow that design: ``neu`` = neutral words + medium
arousal, ``hap``/``exc`` = positive words + high arousal, ``sad`` = negative
words + low arousal, ``ang`` = negative words + high arousal. Angry vs sad
therefore needs the audio, happy vs angry needs the text, and only both
together separate the four classes. The other codes (fru, sur, fea, dis, oth,
xxx) get random mixes. Valence/arousal/dominance ratings are averages of 2-3
integer "rater" scores (1-5) centred on the same design.

The release also holds the traps of the real one: per-rater subfolders and a
hidden ``._`` file in EmoEvaluation with summary-shaped lines, transcription
lines that are not utterances, a transcribed turn with no evaluation (with its
own wav), and lettered dialogs whose utterances are spoken by both actors.

Command line::

    mtmm synth --out <dir> [--seed 0] \
        [--size tiny|small|default|<utterances per dialog>]

writes ``<dir>/IEMOCAP_full_release/`` and ``<dir>/generator_summary.json``.

Authors
 * speechbrain-mtmm contributors
"""

import json
import os
from collections import Counter

import numpy as np
from speechbrain.dataio import audio_io
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

SAMPLE_RATE = 16000
RELEASE_DIRNAME = "IEMOCAP_full_release"
SUMMARY_NAME = "generator_summary.json"
MIN_PER_GENDER = 8

# Dialog name templates, instantiated per session as Ses0<k><template>.
DIALOGS = (
    "F_impro01",
    "M_impro05a",
    "F_impro08b",
    "F_script01_1",
    "M_script02_2",
)
KEPT_CODES = ("neu", "hap", "exc", "sad", "ang")
OTHER_CODES = ("fru", "sur", "fea", "dis", "oth", "xxx")
FOUR_CLASS = {
    "neu": "neu",
    "hap": "hap",
    "exc": "hap",
    "sad": "sad",
    "ang": "ang",
}
# Extra draws beyond the guaranteed one of each code per speaker/session.
CODE_WEIGHTS = {
    "neu": 0.20,
    "hap": 0.08,
    "exc": 0.10,
    "sad": 0.16,
    "ang": 0.18,
    "fru": 0.13,
    "sur": 0.03,
    "fea": 0.03,
    "dis": 0.03,
    "oth": 0.03,
    "xxx": 0.03,
}
# (valence of the words, arousal of the prosody) of each kept code.
DESIGN = {
    "neu": ("neutral", "medium"),
    "hap": ("positive", "high"),
    "exc": ("positive", "high"),
    "sad": ("negative", "low"),
    "ang": ("negative", "high"),
}
CATEGORY_NAMES = {
    "neu": "Neutral state",
    "hap": "Happiness",
    "exc": "Excited",
    "sad": "Sadness",
    "ang": "Anger",
    "fru": "Frustration",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}
WORDS = {
    "positive": (
        "wonderful great love happy amazing fantastic glad beautiful "
        "excellent delighted lovely brilliant"
    ).split(),
    "negative": (
        "terrible awful hate horrible miserable worst broken lost "
        "disaster hopeless ruined painful"
    ).split(),
    "neutral": (
        "table paper tuesday window meeting number street report kitchen "
        "letter station morning"
    ).split(),
}
FILLERS = "the a it was is so this that today really".split()
RATING_CENTRE = {
    "negative": 2,
    "neutral": 3,
    "positive": 4,
    "low": 2,
    "medium": 3,
    "high": 4,
}
# Prosody per arousal level: ranges drawn once per utterance.
PROSODY = {
    "low": {
        "f0": (100.0, 130.0),
        "amplitude": (0.05, 0.09),
        "syllable": (0.28, 0.36),
        "gap": (0.08, 0.14),
        "tilt": 1.8,
    },
    "medium": {
        "f0": (150.0, 185.0),
        "amplitude": (0.14, 0.22),
        "syllable": (0.18, 0.24),
        "gap": (0.05, 0.09),
        "tilt": 1.3,
    },
    "high": {
        "f0": (220.0, 300.0),
        "amplitude": (0.38, 0.55),
        "syllable": (0.11, 0.15),
        "gap": (0.02, 0.05),
        "tilt": 0.8,
    },
}


def _speaker_shift(rng):
    """Per-speaker pitch factor and spectral tilt offset (a mild timbre)."""
    return rng.uniform(0.95, 1.05), rng.uniform(-0.15, 0.15)


def _syllable(rng, f0, amplitude, seconds, tilt):
    """One voiced syllable: harmonics of a gliding f0 under an envelope."""
    n = max(int(seconds * SAMPLE_RATE), 16)
    glide = rng.uniform(-0.08, 0.08)
    contour = f0 * (1.0 + glide * np.linspace(-1.0, 1.0, n))
    phase = 2.0 * np.pi * np.cumsum(contour) / SAMPLE_RATE
    harmonics = np.arange(1, 11)
    weights = harmonics ** (-tilt)
    weights[harmonics * f0 * 1.1 > SAMPLE_RATE / 2 - 500] = 0.0
    tones = np.sin(np.outer(phase, harmonics)) @ weights / weights.sum()
    envelope = np.sin(np.linspace(0.0, np.pi, n)) ** 0.6
    return amplitude * envelope * tones


def synthesize_utterance(rng, arousal, seconds, speaker=(1.0, 0.0)):
    """Synthesises the audio of one utterance at an arousal level.

    Arguments
    ---------
    rng : numpy.random.Generator
        Random source (the only one used).
    arousal : str
        ``"low"``, ``"medium"`` or ``"high"``.
    seconds : float
        Duration of the utterance.
    speaker : tuple
        (pitch factor, tilt offset) of the speaker.

    Returns
    -------
    numpy.ndarray
        int16 samples at 16 kHz.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> low = synthesize_utterance(rng, "low", 1.0)
    >>> high = synthesize_utterance(rng, "high", 1.0)
    >>> low.dtype, low.shape
    (dtype('int16'), (16000,))
    >>> bool(np.abs(high).mean() > 2 * np.abs(low).mean())
    True
    """
    style = PROSODY[arousal]
    pitch, tilt_offset = speaker
    f0 = rng.uniform(*style["f0"]) * pitch
    amplitude = rng.uniform(*style["amplitude"])
    n = int(round(seconds * SAMPLE_RATE))
    audio = rng.normal(0.0, 0.003, n)
    start = rng.uniform(0.04, 0.1)
    while True:
        length = rng.uniform(*style["syllable"])
        if start + length > seconds - 0.03:
            break
        syllable = _syllable(
            rng,
            f0 * rng.uniform(0.93, 1.07),
            amplitude * rng.uniform(0.8, 1.0),
            length,
            style["tilt"] + tilt_offset,
        )
        first = int(start * SAMPLE_RATE)
        audio[first : first + len(syllable)] += syllable[: n - first]
        start += length + rng.uniform(*style["gap"])
    return (np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)


def make_sentence(rng, valence):
    """A short transcript whose content words carry the valence.

    Arguments
    ---------
    rng : numpy.random.Generator
        Random source.
    valence : str
        ``"positive"``, ``"neutral"`` or ``"negative"``.

    Returns
    -------
    str
        A sentence such as ``"So wonderful the lovely."``.

    Example
    -------
    >>> text = make_sentence(np.random.default_rng(0), "negative")
    >>> any(w.strip(".").lower() in WORDS["negative"] for w in text.split())
    True
    """
    keys = rng.choice(WORDS[valence], rng.integers(2, 4), replace=False)
    fillers = rng.choice(FILLERS, rng.integers(1, 3), replace=False)
    words = list(keys) + list(fillers)
    words = [words[i] for i in rng.permutation(len(words))]
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + "."


def _rating(rng, centre, raters):
    """Integer scores of ``raters`` raters around ``centre`` (1-5)."""
    noise = rng.choice([-1, 0, 0, 0, 1], raters)
    return [int(np.clip(centre + e, 1, 5)) for e in noise]


def _design_of(rng, code):
    """(valence, arousal) levels of a code; other codes get random mixes."""
    if code in DESIGN:
        return DESIGN[code]
    valence = str(rng.choice(["negative", "neutral", "positive"]))
    return valence, str(rng.choice(["low", "medium", "high"]))


def _session_codes(rng, genders):
    """Codes for the turns of one session, in turn order.

    Each gender (speaker) gets every kept code at least once, and the
    session gets every other code at least once; the rest is drawn with
    ``CODE_WEIGHTS``.
    """
    codes, weights = zip(*CODE_WEIGHTS.items())
    probs = np.array(weights) / sum(weights)
    pools = {}
    for i, gender in enumerate(("F", "M")):
        pool = list(KEPT_CODES) + list(OTHER_CODES[i::2])
        extra = genders.count(gender) - len(pool)
        pool += [str(c) for c in rng.choice(codes, extra, p=probs)]
        pools[gender] = [pool[j] for j in rng.permutation(len(pool))]
    return [pools[gender].pop() for gender in genders]


def _turn_genders(dialog, count):
    """Alternating genders, starting with the letter after ``Ses0k``."""
    first = dialog[5]
    other = "M" if first == "F" else "F"
    return [first if i % 2 == 0 else other for i in range(count)]


def _plan_session(rng, session, per_dialog):
    """Turn plan of a session: dialog, utterance id, gender and code."""
    dialogs = [f"Ses0{session}{template}" for template in DIALOGS]
    genders = [g for d in dialogs for g in _turn_genders(d, per_dialog)]
    if min(genders.count("F"), genders.count("M")) < MIN_PER_GENDER:
        raise ValueError(
            f"utterances_per_dialog={per_dialog} is too small: each speaker "
            f"needs {MIN_PER_GENDER} turns per session (use >= 4)"
        )
    codes = iter(_session_codes(rng, genders))
    plan = []
    for dialog in dialogs:
        counters = Counter()
        for gender in _turn_genders(dialog, per_dialog):
            utt = f"{dialog}_{gender}{counters[gender]:03d}"
            counters[gender] += 1
            plan.append((dialog, utt, gender, next(codes)))
    return plan


def _make_turn(rng, utt, gender, code, start, speaker):
    """Everything about one turn: audio, text, ratings, timing."""
    valence, arousal = _design_of(rng, code)
    seconds = round(rng.uniform(1.0, 2.5), 3)
    audio = synthesize_utterance(rng, arousal, seconds, speaker)
    raters = int(rng.integers(2, 4))
    scores = {
        "val": _rating(rng, RATING_CENTRE[valence], raters),
        "act": _rating(rng, RATING_CENTRE[arousal], raters),
        "dom": _rating(rng, RATING_CENTRE[arousal], raters),
    }
    duration = len(audio) / SAMPLE_RATE
    return {
        "utt": utt,
        "speaker": f"{utt[:5]}{gender}",
        "code": code,
        "text": make_sentence(rng, valence),
        "audio": audio,
        "start": round(start, 4),
        "end": round(start + duration, 4),
        "duration": duration,
        "scores": scores,
        "valence": round(float(np.mean(scores["val"])), 4),
        "arousal": round(float(np.mean(scores["act"])), 4),
        "dominance": round(float(np.mean(scores["dom"])), 4),
    }


def _category_lines(rng, code):
    """Per-rater categorical lines (``C-E2:\\tAnger;\\t()``)."""
    names = [CATEGORY_NAMES.get(code, "Other") for _ in range(3)]
    if code == "xxx":  # no majority: raters disagree
        names = [CATEGORY_NAMES[c] for c in ("ang", "sad", "fru")]
    dissent = str(rng.choice(OTHER_CODES[:5]))
    names[int(rng.integers(0, 3))] = CATEGORY_NAMES[dissent]
    return [f"C-E{i}:\t{name};\t()" for i, name in enumerate(names, start=2)]


def _evaluation_block(rng, turn):
    """Summary line + per-rater lines of one turn, as in the release."""
    vad = ", ".join(
        f"{turn[key]:.4f}" for key in ("valence", "arousal", "dominance")
    )
    lines = [
        f"[{turn['start']:.4f} - {turn['end']:.4f}]\t{turn['utt']}\t"
        f"{turn['code']}\t[{vad}]"
    ]
    lines += _category_lines(rng, turn["code"])
    s = turn["scores"]
    for i, (val, act, dom) in enumerate(zip(s["val"], s["act"], s["dom"])):
        lines.append(f"A-E{i + 1}:\tval {val}; act {act}; dom  {dom};\t()")
    return lines


def _write_text(path, lines):
    """Writes lines (``\\n`` terminated) to ``path``, creating folders."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def _write_junk(evaluation_dir, dialog, turns):
    """Per-rater subfolder files and a hidden file with summary-like lines.

    Each would change the counts or the labels if it were read as a
    summary file.
    """
    fake = f"[1.0000 - 2.0000]\t{dialog}_F900\tang\t[1.0000, 5.0000, 5.0000]"
    relabelled = [
        f"[{t['start']:.4f} - {t['end']:.4f}]\t{t['utt']}\tsad\t"
        "[1.0000, 1.0000, 1.0000]"
        for t in turns
    ]
    categorical = [f"{t['utt']} :Neutral state; ()" for t in turns]
    attribute = [f"{t['utt']} :act 2; val 3; dom  2;  ()" for t in turns]
    _write_text(
        os.path.join(evaluation_dir, "Categorical", f"{dialog}_e2_cat.txt"),
        categorical + [fake],
    )
    _write_text(
        os.path.join(evaluation_dir, "Attribute", f"{dialog}_e1_atr.txt"),
        attribute + [fake],
    )
    _write_text(
        os.path.join(evaluation_dir, "Self-evaluation", f"{dialog}.txt"),
        relabelled + [fake],
    )
    hidden = os.path.join(evaluation_dir, f"._{dialog}.txt")
    with open(hidden, "wb") as handle:
        handle.write(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\n")
        handle.write((fake + "\n").encode("utf-8"))


def _transcript_lines(dialog, turns, stray_start):
    """Transcript lines in time order plus lines that are not utterances."""
    lines = [
        f"{t['utt']} [{t['start']:08.4f}-{t['end']:08.4f}]: {t['text']}"
        for t in turns
    ]
    lines.insert(
        1,
        f"{dialog}_MXX0 [{stray_start:08.4f}-"
        f"{stray_start + 0.5:08.4f}]: [LAUGHTER]",
    )
    lines.insert(2, "M: [BREATHING]")
    lines.append(f"{dialog}_F00X [GARBAGE]")
    return lines


def _write_dialog(rng, root, session, dialog, turns):
    """Writes the evaluation, transcription and wav files of a dialog."""
    base = os.path.join(root, f"Session{session}")
    evaluation_dir = os.path.join(base, "dialog", "EmoEvaluation")
    header = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    blocks = []
    for turn in turns:
        blocks += _evaluation_block(rng, turn) + [""]
    _write_text(os.path.join(evaluation_dir, f"{dialog}.txt"), header + blocks)
    _write_junk(evaluation_dir, dialog, turns)
    stray_start = turns[-1]["end"] + 1.0
    _write_text(
        os.path.join(base, "dialog", "transcriptions", f"{dialog}.txt"),
        _transcript_lines(dialog, turns, stray_start),
    )
    wav_dir = os.path.join(base, "sentences", "wav", dialog)
    os.makedirs(wav_dir, exist_ok=True)
    stray = synthesize_utterance(rng, "medium", 0.5)
    audio_io.save(
        os.path.join(wav_dir, f"{dialog}_MXX0.wav"),
        stray,
        SAMPLE_RATE,
        subtype="PCM_16",
    )
    for turn in turns:
        audio_io.save(
            os.path.join(wav_dir, f"{turn['utt']}.wav"),
            turn["audio"],
            SAMPLE_RATE,
            subtype="PCM_16",
        )


def _generate_session(rng, root, session, per_dialog, speakers):
    """Generates and writes one session; returns its turns (no audio)."""
    records = []
    plan = _plan_session(rng, session, per_dialog)
    for dialog in dict.fromkeys(d for d, _, _, _ in plan):
        start = rng.uniform(1.0, 5.0)
        turns = []
        for _, utt, gender, code in (p for p in plan if p[0] == dialog):
            speaker = speakers[f"Ses0{session}{gender}"]
            turn = _make_turn(rng, utt, gender, code, start, speaker)
            turns.append(turn)
            start = turn["end"] + rng.uniform(0.3, 2.0)
        _write_dialog(rng, root, session, dialog, turns)
        records += [{k: v for k, v in t.items() if k != "audio"} for t in turns]
    return records


def _summarize(records, seed, per_dialog):
    """What was written: counts per code, class and speaker, durations."""
    kept = [r for r in records if r["code"] in FOUR_CLASS]
    improvised = Counter(
        "improvised" if "impro" in r["utt"] else "scripted" for r in kept
    )
    return {
        "seed": seed,
        "utterances_per_dialog": per_dialog,
        "sample_rate": SAMPLE_RATE,
        "total_utterances": len(records),
        "total_seconds": round(sum(r["duration"] for r in records), 4),
        "raw_counts": dict(Counter(r["code"] for r in records)),
        "speaker_counts": dict(Counter(r["speaker"] for r in records)),
        "kept_utterances_4class": len(kept),
        "kept_seconds_4class": round(sum(r["duration"] for r in kept), 4),
        "class_counts_4class": dict(
            Counter(FOUR_CLASS[r["code"]] for r in kept)
        ),
        "speaker_counts_4class": dict(Counter(r["speaker"] for r in kept)),
        "improvised_counts_4class": dict(improvised),
        "utterances": {
            r["utt"]: {
                "emo_raw": r["code"],
                "speaker": r["speaker"],
                "text": r["text"],
                "duration": r["duration"],
                "valence": r["valence"],
                "arousal": r["arousal"],
                "dominance": r["dominance"],
            }
            for r in records
        },
    }


def generate_synthetic_iemocap(out_dir, seed=0, utterances_per_dialog=14):
    """Writes a synthetic ``IEMOCAP_full_release`` and its summary.

    Arguments
    ---------
    out_dir : str or os.PathLike
        Output folder; receives ``IEMOCAP_full_release/`` and
        ``generator_summary.json``.
    seed : int
        Random seed; the same seed gives byte-identical files.
    utterances_per_dialog : int
        Evaluated turns per dialog (25 dialogs: 5 per session); at least 4.
        The default (14) gives 350 utterances, about 10 minutes of audio.

    Returns
    -------
    dict
        The generator summary (also written to ``generator_summary.json``):
        ``raw_counts``, ``class_counts_4class``, ``speaker_counts(_4class)``,
        ``total_utterances``, ``total_seconds``, ``kept_utterances_4class``,
        ``kept_seconds_4class``, ``improvised_counts_4class`` and per
        utterance ``utterances[utt] = {emo_raw, speaker, text, duration,
        valence, arousal, dominance}``.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> summary = generate_synthetic_iemocap(tmp, utterances_per_dialog=4)
    >>> summary["total_utterances"], len(summary["speaker_counts"])
    (100, 10)
    >>> sorted(summary["raw_counts"]) == sorted(KEPT_CODES + OTHER_CODES)
    True
    """
    root = os.path.join(str(out_dir), RELEASE_DIRNAME)
    rng = np.random.default_rng(seed)
    speakers = {
        f"Ses0{s}{g}": _speaker_shift(rng) for s in range(1, 6) for g in "FM"
    }
    records = []
    for session in range(1, 6):
        records += _generate_session(
            rng, root, session, utterances_per_dialog, speakers
        )
    summary = _summarize(records, seed, utterances_per_dialog)
    path = os.path.join(str(out_dir), SUMMARY_NAME)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=2, sort_keys=True)
        handle.write("\n")
    logger.info(
        "Synthetic IEMOCAP: %d utterances, %.1f s, in %s",
        summary["total_utterances"],
        summary["total_seconds"],
        root,
    )
    return summary
