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
share the transcripts and another model or decoding gets its own.

A transcript depends only on the corpus, never on what was cached before:
the utterances are transcribed in fixed batches, ``batch_size`` at a time
over their sorted ids (:func:`batch_plan`), whatever is cached. Each entry
records the SHA-256 of its audio file and the batch it was transcribed in
(its ids and audio digests, :func:`batch_key`); a batch is served from the
cache only when all its entries are of that very batch, else it is
transcribed again whole (a changed audio file, another ``batch_size``).
Whole batches are written as they finish, atomically: a killed run
resumes with the batches it lacks, and ends with exactly the transcripts
of one uninterrupted pass.

A run records the transcripts it reads in its own folder
(:data:`RECORD_FILE`, with their SHA-256) before its first epoch; a
resumed run (one with checkpoints) reads them back from there, checked
against the digest, never from the shared cache
(:func:`~speechbrain_mtmm.training.inputs.prepare_asr_transcripts`).

The word error rate of the ASR transcripts against the gold ones uses
SpeechBrain's ``ErrorRateStats`` on normalised words
(:func:`normalize_for_wer`: lower case, annotations in brackets removed,
only letters, digits and apostrophes kept).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json
import re
from pathlib import Path

from speechbrain.utils.metric_stats import ErrorRateStats
from tqdm import tqdm

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.encoders.asr import check_asr_source
from speechbrain_mtmm.run_folder import file_digest, json_digest, read_json

TRANSCRIPT_SOURCES = ("gold", "asr")
TEST_CONDITIONS = ("gold", "asr", "none")
CACHE_FILE = "transcripts.json"
INFO_FILE = "asr_info.json"
#: The transcripts a run reads, recorded in its folder before training
RECORD_FILE = "asr_transcripts.json"
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
    transcripts,
    test_transcripts,
    modalities,
    feature_cache=False,
    asr_source=None,
    asr_language=None,
):
    """Refuses transcript settings that cannot run, in one line; call it
    before the run computes or writes anything.

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
    asr_source : str, optional
        The ASR model; when given and ASR transcripts are used, its
        configs are read to check ``asr_language``
        (:func:`~speechbrain_mtmm.encoders.asr.check_asr_source`).
    asr_language : str, optional
        Whisper's language (None: detected).

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
    if asr_source is not None and "asr" in (transcripts, *conditions):
        check_asr_source(asr_source, asr_language)
    return conditions


def batch_plan(ids, size):
    """The fixed batches ASR transcribes: the sorted ids, ``size`` at a
    time (the last batch may be shorter), whatever is cached.

    Arguments
    ---------
    ids : iterable of str
        Utterance ids.
    size : int
        Utterances per batch.

    Returns
    -------
    list of list of str

    Example
    -------
    >>> batch_plan(["c", "a", "e", "b", "d"], 2)
    [['a', 'b'], ['c', 'd'], ['e']]
    """
    ids = sorted(ids)
    size = max(1, int(size))
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def batch_key(batch, digests):
    """What identifies a batch of the plan: its ids and their audio.

    Arguments
    ---------
    batch : list of str
        Utterance ids, in batch order.
    digests : dict
        Utterance id -> SHA-256 of its audio file.

    Returns
    -------
    str
        16 hex digits.

    Example
    -------
    >>> batch_key(["a"], {"a": "0"}) == batch_key(["a"], {"a": "1"})
    False
    """
    members = json.dumps([[utt, digests[utt]] for utt in batch])
    return hashlib.sha256(members.encode("utf-8")).hexdigest()[:16]


def transcripts_digest(texts):
    """SHA-256 of a set of transcripts (sorted by id, as JSON).

    Arguments
    ---------
    texts : dict
        Utterance id -> transcript.

    Returns
    -------
    str
        64 hex digits.

    Example
    -------
    >>> transcripts_digest({"b": "hi", "a": ""}) == transcripts_digest(
    ...     {"a": "", "b": "hi"})
    True
    """
    return json_digest(texts)


def write_transcript_record(path, texts, source, fingerprint):
    """Records the transcripts a run reads, with their digest
    (atomically).

    Arguments
    ---------
    path : str or path-like
        The record (``<run folder>/asr_transcripts.json``).
    texts : dict
        Utterance id -> transcript.
    source : str
        The ASR model (``asr_source``).
    fingerprint : str
        Its fingerprint (weights, config, decoding).

    Example
    -------
    >>> path = getfixture("tmp_path") / RECORD_FILE
    >>> write_transcript_record(path, {"u1": "hello"}, "m", "0" * 64)
    >>> read_transcript_record(path)
    {'u1': 'hello'}
    """
    write_json(
        path,
        {
            "asr_source": str(source),
            "fingerprint": fingerprint,
            "sha256": transcripts_digest(texts),
            "transcripts": dict(sorted(texts.items())),
        },
    )


def read_transcript_record(path):
    """The transcripts a run recorded, checked against their digest.

    Arguments
    ---------
    path : str or path-like
        The record (:func:`write_transcript_record`).

    Returns
    -------
    dict
        Utterance id -> transcript.

    Raises
    ------
    TranscriptSettingError
        Naming the file, when it cannot be read or its transcripts are
        not those recorded.

    Example
    -------
    >>> path = getfixture("tmp_path") / RECORD_FILE
    >>> _ = path.write_text('{"sha256": "0", "transcripts": {"u1": "hi"}}')
    >>> try:
    ...     read_transcript_record(path)
    ... except TranscriptSettingError as error:
    ...     print(str(error).split(": ", 1)[1][:46])
    its transcripts are not those the run recorded
    """
    again = (
        "give --start_over=True to transcribe again and train from the "
        "start, or another --output_folder"
    )
    try:
        record = read_json(path)
        texts, digest = record["transcripts"], record["sha256"]
        if not isinstance(texts, dict) or not all(
            isinstance(t, str) for t in texts.values()
        ):
            raise TypeError("transcripts is not a mapping of id to text")
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TranscriptSettingError(
            f"{path}: cannot read the transcripts this run recorded "
            f"({type(error).__name__}: {error}); {again}"
        ) from None
    actual = transcripts_digest(texts)
    if actual != digest:
        raise TranscriptSettingError(
            f"{path}: its transcripts are not those the run recorded "
            f"(SHA-256 {actual[:12]} instead of {str(digest)[:12]}); {again}"
        )
    return texts


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
        """The transcript of every utterance, computing the batches of
        :func:`batch_plan` that the cache lacks.

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
        todo = []
        for batch in batch_plan(wavs, self.transcriber.batch_size):
            key = batch_key(batch, digests)
            if any(entries.get(utt, {}).get("batch") != key for utt in batch):
                todo.append((batch, key))
        if todo:
            write_json(
                self.folder / INFO_FILE,
                {
                    "source": self.transcriber.source,
                    "fingerprint": self.fingerprint,
                    "decoding": self.transcriber.decoding,
                },
            )
        rate = self.transcriber.sample_rate
        with tqdm(
            total=sum(len(batch) for batch, _ in todo),
            unit="utt",
            desc="ASR",
            disable=not progress,
        ) as bar:
            for batch, key in todo:
                texts = self.transcriber.transcribe(
                    [load_audio(wavs[utt], rate) for utt in batch]
                )
                for utt, text in zip(batch, texts):
                    entries[utt] = {
                        "audio": digests[utt],
                        "batch": key,
                        "text": text,
                    }
                # whole batches, atomically: a killed run resumes here
                write_json(self.path, entries)
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
