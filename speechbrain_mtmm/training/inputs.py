"""What the model reads, computed once before training: the frozen
encoders' features (:func:`prepare_feature_cache`) and the ASR transcripts
(:func:`prepare_asr_transcripts`), both on the main process and shared by
every fold and seed.

Neither touches the run's random state (:func:`keep_random_state`): a
transformers ASR pipeline draws from torch's generator on every call, so
a run whose transcripts were partly cached (a resume after a kill during
ASR, a second seed) would otherwise start training from another state
than one that transcribed everything.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import json
import random
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.distributed import (
    ddp_barrier,
    if_main_process,
    infer_device,
    run_on_main,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.encoders import MODALITIES
from speechbrain_mtmm.encoders.asr import ASRTranscriber
from speechbrain_mtmm.run_folder import run_has_outputs
from speechbrain_mtmm.training.cache import (
    build_feature_caches,
    check_cache_options,
)
from speechbrain_mtmm.training.transcripts import (
    RECORD_FILE,
    TranscriptCache,
    cached_transcripts,
    read_transcript_record,
    write_transcript_record,
)

logger = get_logger(__name__)


@contextlib.contextmanager
def keep_random_state():
    """Restores, on leaving, the random generators' states found on
    entering: torch's (CPU and every CUDA device, through
    ``torch.random.fork_rng``), numpy's and Python's.

    What runs inside (ASR, feature caching) then leaves the run's random
    draws as they would be without it, however much of it ran.

    Example
    -------
    >>> _ = torch.manual_seed(0)
    >>> expected = torch.rand(1), np.random.get_state()[1][0]
    >>> _ = torch.manual_seed(0)
    >>> with keep_random_state():
    ...     _ = torch.rand(5), np.random.rand(3)
    >>> torch.equal(torch.rand(1), expected[0])
    True
    >>> bool(np.random.get_state()[1][0] == expected[1])
    True
    """
    devices = (
        range(torch.cuda.device_count()) if torch.cuda.is_available() else []
    )
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def prepare_feature_cache(
    enabled,
    system,
    modalities,
    paths,
    folder,
    batch_size=8,
    run_opts=None,
    empty_text=False,
):
    """With ``feature_cache``: the frozen encoders' features of the fold.

    Computes what is not cached yet (main process only; all folds and
    seeds share the cache) and returns, on every process, where each
    utterance's features are.

    Arguments
    ---------
    enabled : bool
        ``feature_cache`` (the options are checked either way).
    system : speechbrain_mtmm.system.MultimodalEmotionSystem
        The model (its encoders).
    modalities : list of str
        The modalities the model reads.
    paths : dict
        The fold's split manifests (``fold_paths``); any other test set
        beside them (MSP-Podcast's ``test2.json``) is cached too.
    folder : str or path-like
        Where the cache goes (``feature_cache_folder``).
    batch_size : int
        Utterances per encoder call while caching.
    run_opts : dict, optional
        SpeechBrain run options (``device``).
    empty_text : bool
        A missing transcript reads as an empty text.

    Returns
    -------
    dict or None
        Modality -> {utterance id: file}; None without the cache.
    """
    modalities = [m for m in MODALITIES if m in modalities]
    check_cache_options(
        enabled, {m: system.encoder(m).freeze_policy for m in modalities}
    )
    if not enabled:
        return None
    device = (run_opts or {}).get("device") or infer_device()
    fold = Path(paths["test"]).parent
    manifests = sorted({*paths.values(), *map(str, fold.glob("*.json"))})
    with keep_random_state():
        return run_on_main(
            build_feature_caches,
            kwargs={
                "folder": folder,
                "system": system,
                "modalities": modalities,
                "manifests": manifests,
                "batch_size": batch_size,
                "device": device,
                "empty_text": empty_text,
            },
        )


def prepare_asr_transcripts(
    manifest,
    run_opts,
    source,
    cache_folder,
    language=None,
    batch_size=8,
    run_folder=None,
):
    """The ASR transcripts of a prepared corpus (computed once, cached),
    fixed for the run before its first epoch.

    Computed on the main process (all folds and seeds share the cache),
    without touching the random state (:func:`keep_random_state`). With
    ``run_folder``, the transcripts are recorded there
    (``asr_transcripts.json``, with their SHA-256) and a run that already
    has checkpoints or results reads its record back instead, checked
    against the digest: a resumed run reads what it trained with, whatever
    became of the cache or the ASR model since. The other processes read
    the record (or the finished cache).

    Arguments
    ---------
    manifest : str or path-like
        The prepared manifest (``iemocap.json``, or the one
        ``corpus.json`` names).
    run_opts : dict
        SpeechBrain run options (``device``).
    source : str
        The ASR model (``asr_source``).
    cache_folder : str or path-like
        The cache root (``asr_cache_folder``).
    language : str, optional
        Whisper's language (None: detected).
    batch_size : int
        Utterances per ASR forward pass.
    run_folder : str or path-like, optional
        The run folder, where the transcripts are recorded.

    Returns
    -------
    dict
        Utterance id -> transcript.
    """
    device = run_opts.get("device") or infer_device()
    record = Path(run_folder) / RECORD_FILE if run_folder else None

    def transcribe(progress=True):
        """The corpus' transcripts, from the cache or computed into it;
        recorded in the run folder."""
        with keep_random_state():
            transcriber = ASRTranscriber(
                source, device=device, language=language, batch_size=batch_size
            )
            cache = TranscriptCache(cache_folder, transcriber)
            with open(manifest, encoding="utf-8") as fin:
                wavs = {u: e["wav"] for u, e in json.load(fin).items()}
            texts = cache.transcribe(wavs, progress)
        if record is not None:
            write_transcript_record(record, texts, source, cache.fingerprint)
        return texts

    def fixed():
        """The transcripts of this run: its record once it has trained,
        else those of the cache."""
        if (
            record is not None
            and record.is_file()
            and run_has_outputs(run_folder)
        ):
            logger.info(f"ASR transcripts: this run's record {record}")
            return read_transcript_record(record)
        return transcribe()

    texts = fixed() if if_main_process() else None
    ddp_barrier()
    if texts is not None:
        return texts
    # other processes: what the main one fixed
    if record is not None:
        return read_transcript_record(record)
    with keep_random_state():
        transcriber = ASRTranscriber(
            source, device=device, language=language, batch_size=batch_size
        )
        return cached_transcripts(
            cache_folder, transcriber, manifest, progress=False
        )
