"""Frozen-encoder features computed once, stored on disk, shared by all runs.

With frozen encoders (``freeze_policy: frozen``) the features of an
utterance never change during training, yet an uncached run recomputes them
for every utterance, every epoch, every fold and every seed. Here they are
computed once per corpus into float16 files beside the prepared data, so
all folds and seeds of a cross-validation read them back instead of running
HuBERT/DeBERTa again (EmoBox does the same for its frozen features).

Layout (``folder`` is ``<prepare_folder>/feature_cache`` in the recipe)::

    <folder>/
        audio-<key>/          one folder per encoder + layers + audio setup
            spec.json         what <key> was computed from, readable
            index.json        item -> utterance id and tensor shape
            <item>.npy        float16 features (frames, layers, dim)
        text-<key>/           the same for the text encoder

``<key>`` (16 hex digits) is a SHA-256 over the folder's spec: the cache
format version, the modality, the encoder class and ``source``, a
fingerprint of the encoder (its config, its preprocessing flags and the
bytes of every weight and buffer: ``Encoder.fingerprint``), the layer
selection (normalised, so ``-1`` and the last index are one key) and,
for audio, the sample rate and ``max_audio_seconds``. ``<item>`` (24 hex
digits) is a SHA-256 over what one utterance's features come from: for
audio, the absolute path, size and modification time (ns) of its file; for
text, the transcript and its token ids (so the tokenizer and its
``max_length`` are in the key). A changed encoder, layer choice, crop
length, audio file or transcript therefore maps to another file name, and
a cached tensor is never served stale. Files are written under a temporary
name and renamed into place, so a killed build leaves no partial file and
concurrent builds of the same item are harmless. The item files are the
truth; ``index.json`` is a listing for people and tools.

Features are computed in float32 (no autocast), in batches sorted by
length, and cropped to each utterance's own valid frames (the encoder's
``output_lens``), so an utterance gets the features it would get alone, up
to float noise; encoders whose features depend on padding (HF audio models
without an attention mask, e.g. wav2vec2-base) encode one utterance at a
time. Concurrent builds of one cache folder (parallel CV jobs) take turns
on a lock file, so the features are computed once.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import speechbrain as sb
import torch
from speechbrain.utils.data_utils import batch_pad_right
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.atomic import save_array, write_json, write_text
from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.encoders import MODALITIES

logger = get_logger(__name__)

CACHE_VERSION = 2


class FeatureCacheError(ValueError):
    """A feature-cache option that cannot work; the message says why."""


def load_features(path):
    """Reads one cached tensor (float16).

    Arguments
    ---------
    path : str
        An ``<item>.npy`` file of a cache folder.

    Returns
    -------
    torch.Tensor
        ``(frames, layers, dim)``, float16.
    """
    return torch.from_numpy(np.load(path))


def feature_pipeline(modality, files):
    """A data-pipeline item that reads an utterance's cached features.

    Arguments
    ---------
    modality : str
        "audio" or "text"; the item provides ``<modality>_feats``.
    files : dict
        Utterance id -> cached file (from :meth:`FeatureCache.build`).

    Returns
    -------
    callable
        A SpeechBrain dynamic item taking ``id``.

    Example
    -------
    >>> path = str(getfixture("tmpdir") / "a.npy")
    >>> np.save(path, np.zeros((4, 1, 2), dtype=np.float16))
    >>> data = sb.dataio.dataset.DynamicItemDataset({"u1": {}})
    >>> data.add_dynamic_item(feature_pipeline("audio", {"u1": path}))
    >>> data.set_output_keys(["audio_feats"])
    >>> data[0]["audio_feats"].shape, data[0]["audio_feats"].dtype
    (torch.Size([4, 1, 2]), torch.float16)
    """

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides(f"{modality}_feats")
    def cached_features(utt_id):
        """The utterance's cached hidden states."""
        return load_features(files[utt_id])

    return cached_features


class FeatureCache:
    """The on-disk feature cache of one frozen encoder.

    Arguments
    ---------
    root : str or path-like
        The cache root; this cache lives in ``<root>/<modality>-<key>``.
    encoder : torch.nn.Module
        The (frozen) encoder whose features are cached.
    layers : list of int
        Hidden states to cache (``Encoder.normalize_layers``; ``[-1]``:
        the output).
    sample_rate : int
        Sample rate audio is loaded at (audio encoders).
    max_audio_seconds : float, optional
        Audio longer than this is cropped (audio encoders).

    Example
    -------
    >>> from speechbrain_mtmm.encoders import TokenEmbeddingTextEncoder
    >>> encoder = TokenEmbeddingTextEncoder(d_model=8, freeze="frozen")
    >>> cache = FeatureCache(getfixture("tmpdir"), encoder, [-1])
    >>> cache.folder.name.startswith("text-"), len(cache.key)
    (True, 16)
    >>> files = cache.build({"u1": {"text": "Excuse me."},
    ...                      "u2": {"text": "Yeah."}})
    >>> feats = load_features(files["u1"])
    >>> feats.shape, feats.dtype
    (torch.Size([4, 1, 8]), torch.float16)
    >>> cache.build({"u1": {"text": "Excuse me."}}) == {"u1": files["u1"]}
    True
    """

    def __init__(
        self,
        root,
        encoder,
        layers=(-1,),
        sample_rate=16000,
        max_audio_seconds=None,
        empty_text=False,
    ):
        if encoder.modality not in MODALITIES:
            raise FeatureCacheError(f"unknown modality {encoder.modality!r}")
        self.encoder = encoder
        self.empty_text = bool(empty_text)
        self.modality = encoder.modality
        self.layers = encoder.normalize_layers(list(layers))
        self.sample_rate = int(sample_rate)
        self.max_audio_seconds = (
            None if max_audio_seconds is None else float(max_audio_seconds)
        )
        self.spec = {
            "version": CACHE_VERSION,
            "modality": self.modality,
            "encoder": type(encoder).__name__,
            "source": str(getattr(encoder, "source", type(encoder).__name__)),
            "fingerprint": encoder.fingerprint(),
            "layers": self.layers,
            "dtype": "float16",
            "layout": "(frames, layers, dim)",
        }
        if self.modality == "audio":
            self.spec["sample_rate"] = self.sample_rate
            self.spec["max_audio_seconds"] = self.max_audio_seconds
        text = json.dumps(self.spec, sort_keys=True)
        self.key = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
        self.folder = Path(root) / f"{self.modality}-{self.key}"

    def item_key(self, utt_id, entry):
        """The file key of one utterance (see the module docstring).

        Arguments
        ---------
        utt_id : str
            Utterance id (for error messages).
        entry : dict
            Its manifest entry: ``wav`` (audio) or ``text`` (text).

        Returns
        -------
        str
            24 hex digits.
        """
        if self.modality == "audio":
            path = os.path.abspath(entry["wav"])
            try:
                stat = os.stat(path)
            except OSError as error:
                raise FeatureCacheError(f"{utt_id}: {error}") from None
            what = f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}"
        else:
            ids = self._tokens(utt_id, entry).tolist()
            what = f"{entry['text'] or ''}\0{ids}"
        return hashlib.sha256(what.encode("utf-8")).hexdigest()[:24]

    def files(self, entries):
        """Where each utterance's features are (or will be) cached.

        Arguments
        ---------
        entries : dict
            Utterance id -> manifest entry.

        Returns
        -------
        dict
            Utterance id -> path of its ``.npy`` file (as str).
        """
        return {
            utt_id: str(self.folder / f"{self.item_key(utt_id, entry)}.npy")
            for utt_id, entry in entries.items()
        }

    def build(self, entries, device="cpu", batch_size=8):
        """Computes the features missing from the cache.

        Arguments
        ---------
        entries : dict
            Utterance id -> manifest entry (``wav`` + ``duration`` for audio,
            ``text`` for text).
        device : str
            Where the encoder runs (it is moved back afterwards).
        batch_size : int
            Utterances per encoder call.

        Returns
        -------
        dict
            Utterance id -> cached file, for every entry.
        """
        files = self.files(entries)
        if all(os.path.exists(path) for path in files.values()):
            logger.info(f"Feature cache {self.folder}: all {len(files)} hit")
            return files
        self.folder.mkdir(parents=True, exist_ok=True)
        with _locked(self.folder / ".lock"):
            todo = {}  # what is still missing once we hold the lock
            for utt_id, path in files.items():
                if not os.path.exists(path):
                    todo.setdefault(path, utt_id)
            logger.info(
                f"Feature cache {self.folder}: computing {len(todo)} of "
                f"{len(files)} utterances"
            )
            write_json(self.folder / "spec.json", self.spec)
            items = [(p, u, entries[u]) for p, u in todo.items()]
            shapes = self._compute(items, device, batch_size)
            self._update_index(
                {Path(p).stem: {"id": todo[p], "shape": s} for p, s in shapes}
            )
        return files

    def _tokens(self, utt_id, entry):
        text = entry.get("text")
        if (not text or not text.strip()) and not self.empty_text:
            raise FeatureCacheError(f"{utt_id}: empty transcript")
        return self.encoder.tokenize(text or "")

    def _input(self, utt_id, entry):
        if self.modality == "text":
            return self._tokens(utt_id, entry)
        return load_audio(
            entry["wav"], self.sample_rate, self.max_audio_seconds
        )

    def _sort_key(self, item):
        _, utt_id, entry = item
        if self.modality == "audio":
            return float(entry.get("duration", 0.0))
        return len(entry.get("text") or "")

    def _compute(self, items, device, batch_size):
        encoder = self.encoder
        params = list(encoder.parameters())
        home = params[0].device if params else torch.device("cpu")
        was_training = encoder.training
        if not getattr(encoder, "use_attention_mask", True):
            # no attention mask (group-norm HF models): padding changes
            # the features, so every utterance is encoded alone
            batch_size = 1
        encoder.to(device).eval()
        shapes = []
        items = sorted(items, key=self._sort_key)
        try:
            for start in range(0, len(items), max(1, int(batch_size))):
                chunk = items[start : start + max(1, int(batch_size))]
                inputs = [self._input(utt_id, e) for _, utt_id, e in chunk]
                padded, lens = batch_pad_right(inputs)
                with torch.no_grad():
                    hiddens = encoder.hidden_states(
                        padded.to(device), lens.to(device), self.layers
                    )
                n_frames = hiddens.shape[1]
                out_lens = encoder.output_lens(lens, padded.shape[1], n_frames)
                frames = torch.round(out_lens * n_frames).long().tolist()
                for i, (path, _, _) in enumerate(chunk):
                    feats = hiddens[i, : max(1, frames[i])]
                    feats = feats.to(torch.float16).cpu().numpy()
                    save_array(path, feats)
                    shapes.append((path, list(feats.shape)))
        finally:
            encoder.to(home)
            encoder.train(was_training)
        return shapes

    def _update_index(self, new_items):
        path = self.folder / "index.json"
        index = {"spec": self.spec, "items": {}}
        if path.exists():
            try:
                with open(path, encoding="utf-8") as fin:
                    index["items"] = json.load(fin).get("items", {})
            except (OSError, ValueError):
                logger.warning(f"Rewriting an unreadable {path}")
        index["items"].update(new_items)
        write_text(path, json.dumps(index, indent=1, sort_keys=True))


def check_cache_options(feature_cache, freeze_policies):
    """Stops on option combinations the feature cache cannot honour.

    Arguments
    ---------
    feature_cache : bool
        Whether features are cached.
    freeze_policies : dict
        Modality -> freeze policy of each cached encoder; caching needs
        "frozen".

    Raises
    ------
    FeatureCacheError
        With one line saying what to change.

    Example
    -------
    >>> check_cache_options(True, {"audio": "frozen", "text": "paper"})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.cache.FeatureCacheError: feature_cache: True \
needs frozen encoders, but the text encoder's freeze policy is 'paper' \
(set freeze_policy: frozen): fine-tuned encoders change their features at \
every step, so they cannot be cached
    """
    if not feature_cache:
        return
    for modality, policy in freeze_policies.items():
        if policy != "frozen":
            raise FeatureCacheError(
                "feature_cache: True needs frozen encoders, but the "
                f"{modality} encoder's freeze policy is {policy!r} (set "
                "freeze_policy: frozen): fine-tuned encoders change their "
                "features at every step, so they cannot be cached"
            )


def read_manifests(paths):
    """The union of the utterances of several manifest files.

    Arguments
    ---------
    paths : iterable of str
        JSON manifests (utterance id -> entry), e.g. a fold's splits.

    Returns
    -------
    dict
        Utterance id -> entry.
    """
    entries = {}
    for path in paths:
        with open(path, encoding="utf-8") as fin:
            entries.update(json.load(fin))
    return entries


def build_feature_caches(
    folder,
    system,
    modalities,
    manifests,
    batch_size=8,
    device="cpu",
    empty_text=False,
):
    """Fills the caches of a model's encoders; returns where the files are.

    Run it on the main process only (``run_on_main``): the other processes
    receive the returned mapping.

    Arguments
    ---------
    folder : str
        The cache root (``<prepare_folder>/feature_cache``).
    system : speechbrain_mtmm.system.MultimodalEmotionSystem
        The model: its frozen encoders, the layers it uses, its input
        sample rate and crop length.
    modalities : sequence of str
        The modalities to cache (those the model sees).
    manifests : iterable of str
        Manifests whose utterances are cached (a fold's splits cover the
        whole corpus in both protocols, so the first fold fills it).
    batch_size : int
        Utterances per encoder call.
    device : str
        Where the encoders run while caching.
    empty_text : bool
        An utterance without a transcript is cached as the empty text
        (``missing_transcripts: empty``) instead of stopping.

    Returns
    -------
    dict
        Modality -> (utterance id -> cached file).
    """
    entries = read_manifests(manifests)
    files = {}
    for modality in modalities:
        cache = FeatureCache(
            folder,
            system.encoder(modality),
            system.layers(modality),
            sample_rate=system.config["sample_rate"],
            max_audio_seconds=system.config["max_audio_seconds"],
            empty_text=empty_text,
        )
        files[modality] = cache.build(entries, device, batch_size)
    return files


@contextlib.contextmanager
def _locked(path):
    """Holds an exclusive lock on ``path`` (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:  # Windows: concurrent builds only duplicate work
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
