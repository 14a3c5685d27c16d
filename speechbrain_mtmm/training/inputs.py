"""What the model reads, computed once before training: the frozen
encoders' features (:func:`prepare_feature_cache`) and the ASR transcripts
(:func:`prepare_asr_transcripts`), both on the main process and shared by
every fold and seed.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from pathlib import Path

from speechbrain.utils.distributed import (
    ddp_barrier,
    if_main_process,
    infer_device,
    run_on_main,
)
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.encoders import MODALITIES
from speechbrain_mtmm.encoders.asr import ASRTranscriber
from speechbrain_mtmm.training.cache import (
    build_feature_caches,
    check_cache_options,
)
from speechbrain_mtmm.training.transcripts import (
    cached_transcripts,
)

logger = get_logger(__name__)


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
    manifest, run_opts, source, cache_folder, language=None, batch_size=8
):
    """The ASR transcripts of a prepared corpus (computed once, cached).

    Computed on the main process (all folds and seeds share the cache),
    then read by the others.

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

    Returns
    -------
    dict
        Utterance id -> transcript.
    """
    device = run_opts.get("device") or infer_device()

    def transcribe(progress=True):
        """The corpus' transcripts, from the cache or computed into it."""
        transcriber = ASRTranscriber(
            source, device=device, language=language, batch_size=batch_size
        )
        return cached_transcripts(cache_folder, transcriber, manifest, progress)

    texts = transcribe() if if_main_process() else None
    ddp_barrier()
    # other processes read the finished cache (nothing left to compute)
    return texts if texts is not None else transcribe(progress=False)
