"""ASR transcripts as a setting of the recipe, and their word error rate.

``transcripts: asr`` trains (and validates) on what an ASR model hears
instead of the gold transcripts; ``test_transcripts`` lists what the
trained model is tested with (``gold``, ``asr``, ``none``: audio only,
the text masked as Random Modality Masking does), the first giving the
run's headline results. The ASR model (``asr_source``, any transformers
ASR model, Whisper by default) transcribes every utterance of the
prepared corpus once, into a cache beside the prepared data::

    <asr_cache_folder>/<key>/transcripts.json   {utt_id: {"audio", "text"}}
    <asr_cache_folder>/<key>/asr_info.json      source, decoding options

``key`` is a digest of the ASR model's weights, config, vocabulary and
decoding options (not of where it was loaded from), so folds and seeds
share the transcripts and another model or decoding gets its own; each
entry records the SHA-256 of its audio file, so a changed file is
transcribed again. Batches are written as they finish: a killed run
resumes where it stopped.

The word error rate of the ASR transcripts against the gold ones uses
SpeechBrain's ``ErrorRateStats`` on normalised words
(:func:`normalize_for_wer`: lower case, annotations in brackets removed,
only letters, digits and apostrophes kept).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import json
import re
from pathlib import Path

from speechbrain.utils.metric_stats import ErrorRateStats
from tqdm import tqdm

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.run_folder import file_digest, read_json

TRANSCRIPT_SOURCES = ("gold", "asr")
TEST_CONDITIONS = ("gold", "asr", "none")
CACHE_FILE = "transcripts.json"
INFO_FILE = "asr_info.json"
_ANNOTATION = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)|\{[^}]*\}")
_NOT_WORD = re.compile(r"[^a-z0-9' ]+")


class TranscriptSettingError(ValueError):
    """A transcripts setting the recipe cannot honour."""


def normalize_for_wer(text):
    """The words of a transcript as the word error rate compares them.

    Arguments
    ---------
    text : str
        A transcript.

    Returns
    -------
    list of str

    Example
    -------
    >>> normalize_for_wer("Well, I DON'T know... [LAUGHTER] -- Really?!")
    ['well', 'i', "don't", 'know', 'really']
    """
    text = _ANNOTATION.sub(" ", text.lower())
    return _NOT_WORD.sub(" ", text).split()


def word_error_rate(ids, hypotheses, references):
    """SpeechBrain's ``ErrorRateStats`` over normalised words.

    Arguments
    ---------
    ids : list of str
        Utterance ids.
    hypotheses, references : list of str
        ASR and gold transcripts, in the same order.

    Returns
    -------
    dict
        ``WER`` (%), ``insertions``, ``deletions``, ``substitutions``,
        ``words`` (reference words) and ``n`` (utterances).

    Example
    -------
    >>> word_error_rate(["a"], ["the cat sat"], ["The cat sat down."])["WER"]
    25.0
    """
    stats = ErrorRateStats()
    stats.append(
        ids,
        [normalize_for_wer(h) for h in hypotheses],
        [normalize_for_wer(r) for r in references],
    )
    summary = stats.summarize()
    return {
        "WER": float(summary["WER"]),
        "insertions": int(summary["insertions"]),
        "deletions": int(summary["deletions"]),
        "substitutions": int(summary["substitutions"]),
        "words": int(summary["num_scored_tokens"]),
        "n": len(ids),
    }


def check_transcript_settings(
    transcripts, test_transcripts, modalities, feature_cache=False
):
    """Refuses transcript settings that cannot run, in one line.

    Arguments
    ---------
    transcripts : str
        ``gold`` or ``asr`` (training and validation).
    test_transcripts : list of str
        Test conditions, the headline first.
    modalities : list of str
        What the model reads.
    feature_cache : bool
        The text features come from the cache, computed on the gold
        transcripts (so ASR text cannot be fed).

    Returns
    -------
    list of str
        The test conditions, without repeats (``none`` dropped for a model
        without audio or without text, where it means nothing).

    Example
    -------
    >>> check_transcript_settings("gold", ["asr", "gold", "none"], ["audio"])
    ['asr', 'gold']
    """
    if transcripts not in TRANSCRIPT_SOURCES:
        raise TranscriptSettingError(
            f"transcripts must be one of {TRANSCRIPT_SOURCES}, got "
            f"{transcripts!r}"
        )
    if isinstance(test_transcripts, str):
        test_transcripts = [test_transcripts]
    unknown = [t for t in test_transcripts if t not in TEST_CONDITIONS]
    if unknown or not test_transcripts:
        raise TranscriptSettingError(
            f"test_transcripts must list some of {TEST_CONDITIONS}, got "
            f"{list(test_transcripts)}"
        )
    conditions = list(dict.fromkeys(test_transcripts))
    if feature_cache and "asr" in (transcripts, *conditions):
        raise TranscriptSettingError(
            "ASR transcripts with feature_cache: the cache holds the text "
            "features of the gold transcripts; set feature_cache: False"
        )
    if not {"audio", "text"} <= set(modalities):
        conditions = [c for c in conditions if c != "none"]
        if not conditions:
            raise TranscriptSettingError(
                "test_transcripts: none (audio only) means nothing for a "
                f"model of {list(modalities)}; list gold or asr"
            )
    return conditions


class TranscriptCache:
    """The ASR transcripts of a corpus, computed once, resumable.

    Arguments
    ---------
    folder : str or path-like
        The cache root (``asr_cache_folder``).
    transcriber : speechbrain_mtmm.encoders.asr.ASRTranscriber
        The ASR model (its fingerprint keys the cache).
    """

    def __init__(self, folder, transcriber):
        self.transcriber = transcriber
        # hashing the weights takes seconds for a real model: once
        self.fingerprint = transcriber.fingerprint()
        self.key = self.fingerprint[:16]
        self.folder = Path(folder) / self.key
        self.path = self.folder / CACHE_FILE

    def load(self):
        """The cached entries (``{}`` when none)."""
        return read_json(self.path) if self.path.is_file() else {}

    def transcribe(self, wavs, progress=True):
        """The transcript of every utterance, computing what is missing.

        Arguments
        ---------
        wavs : dict
            Utterance id -> audio file.
        progress : bool
            Show a progress bar.

        Returns
        -------
        dict
            Utterance id -> transcript.
        """
        entries = self.load()
        digests = {utt: file_digest(path) for utt, path in wavs.items()}
        todo = [
            utt
            for utt in wavs
            if entries.get(utt, {}).get("audio") != digests[utt]
        ]
        if todo:
            write_json(
                self.folder / INFO_FILE,
                {
                    "source": self.transcriber.source,
                    "fingerprint": self.fingerprint,
                    "decoding": self.transcriber.decoding,
                },
            )
        size = max(1, self.transcriber.batch_size)
        rate = self.transcriber.sample_rate
        with tqdm(
            total=len(todo), unit="utt", desc="ASR", disable=not progress
        ) as bar:
            for start in range(0, len(todo), size):
                batch = todo[start : start + size]
                texts = self.transcriber.transcribe(
                    [load_audio(wavs[utt], rate) for utt in batch]
                )
                for utt, text in zip(batch, texts):
                    entries[utt] = {"audio": digests[utt], "text": text}
                write_json(self.path, entries)  # a killed run resumes here
                bar.update(len(batch))
        return {utt: entries[utt]["text"] for utt in wavs}


def cached_transcripts(folder, transcriber, manifest, progress=True):
    """Transcribes the utterances of a prepared manifest (cached).

    Arguments
    ---------
    folder : str or path-like
        The cache root.
    transcriber : speechbrain_mtmm.encoders.asr.ASRTranscriber
        The ASR model.
    manifest : str or path-like
        A manifest ``{utt_id: {"wav": ...}}`` (e.g. ``iemocap.json``).
    progress : bool
        Show a progress bar.

    Returns
    -------
    dict
        Utterance id -> transcript.
    """
    with open(manifest, encoding="utf-8") as fin:
        wavs = {utt: entry["wav"] for utt, entry in json.load(fin).items()}
    return TranscriptCache(folder, transcriber).transcribe(wavs, progress)


def asr_word_error_rates(entries, asr):
    """Word error rates of the ASR transcripts of a split, whole and per
    subset (IEMOCAP's improvised and scripted parts); utterances without a
    gold transcript are left out.

    Arguments
    ---------
    entries : dict
        Utterance id -> manifest entry (``text``: gold, ``improvised``).
    asr : dict
        Utterance id -> ASR transcript.

    Returns
    -------
    dict
        ``all``, ``improvised``, ``scripted`` -> :func:`word_error_rate`
        (a subset without utterances is left out).
    """
    # utterances without a gold transcript have no reference
    entries = {u: e for u, e in entries.items() if e.get("text")}
    subsets = {"all": list(entries)}
    parts = all("improvised" in e for e in entries.values())
    for subset, improvised in (("improvised", True), ("scripted", False)):
        subsets[subset] = [
            u
            for u, e in entries.items()
            if parts and bool(e["improvised"]) == improvised
        ]
    return {
        subset: word_error_rate(
            ids, [asr[u] for u in ids], [entries[u]["text"] for u in ids]
        )
        for subset, ids in subsets.items()
        if ids
    }


def with_conditions(tested, wer=None):
    """The test results of a run tested in several conditions.

    Arguments
    ---------
    tested : dict
        Condition (``gold``, ``asr``, ``none``) -> test results, the
        headline condition first.
    wer : dict, optional
        :func:`asr_word_error_rates` of the test split.

    Returns
    -------
    dict
        The headline results, with ``test_transcripts`` (its condition),
        ``conditions`` (each condition's scalar scores and ``n``) and
        ``WER`` (when ASR transcripts were made).

    Example
    -------
    >>> out = with_conditions({"gold": {"WA": 0.9, "n": 3, "labels": ["a"]},
    ...                        "none": {"WA": 0.5, "n": 3, "labels": ["a"]}})
    >>> out["WA"], out["test_transcripts"], out["conditions"]["none"]
    (0.9, 'gold', {'WA': 0.5, 'n': 3})
    """
    headline = next(iter(tested))
    results = dict(tested[headline])
    results["test_transcripts"] = headline
    results["conditions"] = {
        condition: {
            key: value
            for key, value in scores.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        for condition, scores in tested.items()
    }
    if wer is not None:
        results["WER"] = wer
    return results
