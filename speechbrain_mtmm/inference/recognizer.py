"""Inference with an exported model: classes + valence/arousal per file.

``mtmm export`` (:mod:`speechbrain_mtmm.sharing.export`) turns a trained
run into a self-contained folder; :class:`MultimodalEmotionRecognizer`, a
SpeechBrain ``Pretrained`` interface, loads it with ``from_hparams`` (or
its ONNX graphs with ``from_onnx``) and predicts::

    recognizer = MultimodalEmotionRecognizer.from_hparams("model_folder")
    recognizer.predict_file("utt.wav", text="I got the job!")
    # {'label': 'hap', 'probs': {...}, 'valence': 0.81, 'arousal': 0.66,
    #  'valence_1to5': 4.24, 'arousal_1to5': 3.64, 'path': 'audio+text', ...}

Every result says which path produced it:

* ``"audio+text"``: audio and the given transcript;
* ``"audio+asr"``: no transcript was given and the hyperparameters name an
  ASR model (``asr_source``, any transformers ASR model, e.g. Whisper): its
  transcript is used (and returned as ``text_used``);
* ``"audio-only"``: no transcript and no ASR model (or an empty
  transcript): the text side gets exactly what Random Modality Masking fed
  the model in training, one zero frame of the text encoder's width
  (``MultimodalEmotionSystem.masked``);
* ``"text-only"``: no audio; the audio side is masked the same way.

Audio goes through :func:`speechbrain_mtmm.data.audio.load_audio`: any
sample rate is resampled to 16 kHz and stereo is mixed down, with a logged
warning. Audio longer than ``max_audio_seconds`` (the crop length of the
training run) is, with ``long_audio: chunk`` (default), split into equal
windows of at most that length, every window paired with the whole
transcript; class probabilities and dimensions are averaged over the
windows, weighted by their length. ``long_audio: truncate`` keeps the first
``max_audio_seconds`` only, like the recipe's test stage.

A model is a folder or a hub id, fetched (into a ``savedir`` if given) by
SpeechBrain's ``fetch`` (:mod:`speechbrain_mtmm.inference.loading`); the
folder's ``custom_interface.py`` also loads it through SpeechBrain's
``foreign_class``, without this package.

A model folder's ``hyperparams.yaml`` is HyperPyYAML: loading it runs the
constructors it names (``!new:``, ``!apply:``), which can be any Python
callable. Load only model folders you trust, as with any HyperPyYAML or
pickle-based model. :meth:`MultimodalEmotionRecognizer.from_hparams` reads
it without building anything first and refuses tags other than an export's
and block classes from outside the package unless given
``trust_remote_code=True``; the weights are read with
``torch.load(weights_only=True)``, and every file read is checked against
the SHA-256 of ``export_info.json``.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import batch_pad_right
from speechbrain.utils.fetching import FetchConfig, LocalStrategy
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.encoders.asr import ASRTranscriber
from speechbrain_mtmm.inference.loading import (
    check_labels,
    check_trusted,
    fetch_export,
    fetch_file,
    fetched_root,
    files_to_load,
    load_state_dict_strict,  # noqa: F401 (older exports name it here)
    plain_hparams,
    read_digests,
    verify_digests,
)
from speechbrain_mtmm.inference.model_source import (
    ExportLoadError,
    export_source,
)
from speechbrain_mtmm.inference.onnx_runtime import (
    OnnxBackendError,
    OnnxSystem,
)
from speechbrain_mtmm.run_folder import (
    EXPORT_INFO,
    HYPERPARAMS,
    RATING_SCALE,
    classes_trained,
    rating_key,
    to_rating,
    trained_dimensions,
)

logger = get_logger(__name__)

# Below these, a prediction is flagged: too little audio, or no signal
SHORT_AUDIO_SECONDS = 0.5
SILENCE_RMS = 1e-4
LONG_AUDIO_MODES = ("chunk", "truncate")


def split_long_audio(wav, max_samples, mode="chunk"):
    """Splits or crops a waveform longer than ``max_samples``.

    Arguments
    ---------
    wav : torch.Tensor
        1-D waveform.
    max_samples : int or None
        Longest window (None: no limit).
    mode : str
        "chunk": ``ceil(len / max_samples)`` windows of equal length (the
        last one may be a few samples shorter); "truncate": the first
        ``max_samples`` only.

    Returns
    -------
    list of torch.Tensor
        The windows, in order.

    Example
    -------
    >>> [len(w) for w in split_long_audio(torch.zeros(25), 10)]
    [9, 9, 7]
    >>> [len(w) for w in split_long_audio(torch.zeros(25), 10, "truncate")]
    [10]
    >>> [len(w) for w in split_long_audio(torch.zeros(8), 10)]
    [8]
    """
    if mode not in LONG_AUDIO_MODES:
        raise ValueError(f"long_audio must be one of {LONG_AUDIO_MODES}")
    if max_samples is None or len(wav) <= max_samples:
        return [wav]
    if mode == "truncate":
        return [wav[:max_samples]]
    size = math.ceil(len(wav) / math.ceil(len(wav) / max_samples))
    return list(wav.split(size))


@dataclass
class _Utterance:
    """One input: a name for messages, a waveform and/or a transcript."""

    name: str
    wav: Optional[torch.Tensor]
    text: Optional[str]
    path: str = ""
    windows: int = 0


class MultimodalEmotionRecognizer(Pretrained):
    """Emotion class, valence and arousal from audio and/or a transcript.

    Load an exported model with ``from_hparams(source=<folder>)`` (the
    folder written by ``mtmm export``); ``run_opts={"device": "cuda"}``
    moves it to a GPU, ``overrides={"asr_source": "openai/whisper-small"}``
    adds a transcriber for files without a transcript, ``overrides=
    {"long_audio": "truncate"}`` crops long audio instead of windowing it.

    Every prediction is a dict: ``label``, ``probs`` ({label: p}),
    ``valence``, ``arousal`` (0-1, and ``dominance`` for 3-dimension
    models), the same on the 1-5 rating scale (``valence_1to5``, ...),
    ``path`` (which inputs were used, see the module docstring),
    ``text_used`` (the transcript, None when the text was masked) and
    ``windows`` (how many audio windows were averaged).

    A model folder's ``hyperparams.yaml`` can run code when loaded (it is
    HyperPyYAML): load only folders you trust (``from_hparams`` refuses
    what an export does not write, see its ``trust_remote_code``).

    Arguments
    ---------
    *args : tuple
        SpeechBrain's ``Pretrained`` arguments, ``modules`` and
        ``hparams``: ``modules["system"]`` is a
        :class:`~speechbrain_mtmm.MultimodalEmotionSystem` (labels,
        dimensions, modalities and sample rate come from its ``config``);
        ``hparams`` holds at least ``max_audio_seconds`` and
        ``long_audio``.
    transcriber : callable, optional
        ``transcriber(wav) -> str`` for a 16 kHz waveform; replaces the
        one built from ``asr_source``.
    **kwargs : dict
        The rest of ``Pretrained``'s arguments: ``run_opts`` (SpeechBrain
        run options, ``device``, ...) and ``freeze_params`` (eval mode and
        no gradients, the default).

    Example
    -------
    >>> from speechbrain_mtmm.system import PAPER_CONFIG
    >>> from speechbrain_mtmm import MultimodalEmotionSystem
    >>> config = {**PAPER_CONFIG, "d_model": 16, "n_heads": 2,
    ...           "refinement_ffn": 32, "bridge_tokens": 4,
    ...           "audio": {"source": "fbank", "layers": [-1],
    ...                     "light_size": 16},
    ...           "text": {"source": "hashing", "layers": [-1],
    ...                    "max_length": 32, "light_size": 16}}
    >>> system = MultimodalEmotionSystem(config, freeze="frozen")
    >>> recognizer = MultimodalEmotionRecognizer(
    ...     {"system": system},
    ...     {"max_audio_seconds": 10.0, "long_audio": "chunk"},
    ...     run_opts={"device": "cpu"})
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> results = recognizer.predict_batch(
    ...     wavs, torch.tensor([1.0, 0.5]), ["I got the job!", None])
    >>> [r["path"] for r in results], results[0]["label"] in system.labels
    (['audio+text', 'audio-only'], True)
    >>> 1 <= results[1]["valence_1to5"] <= 5, results[1]["text_used"]
    (True, None)
    >>> recognizer.predict_text("I miss him so much.")["path"]
    'text-only'
    """

    HPARAMS_NEEDED = ["max_audio_seconds", "long_audio"]
    MODULES_NEEDED = ["system"]

    def __init__(self, *args, transcriber=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._transcriber = transcriber
        if self.hparams.long_audio not in LONG_AUDIO_MODES:
            raise ValueError(
                f"long_audio is {self.hparams.long_audio!r}; use one of "
                f"{LONG_AUDIO_MODES}"
            )

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file=HYPERPARAMS,
        overrides=None,
        savedir=None,
        trust_remote_code=False,
        local_strategy=LocalStrategy.SYMLINK,
        fetch_config=None,
        **kwargs,
    ):
        """Loads a model written by ``mtmm export``: a folder or hub id.

        The files are fetched by SpeechBrain's ``fetch`` (into ``savedir``
        when given), ``hyperparams.yaml`` is checked against the export's
        SHA-256 and its tags against those ``mtmm export`` writes before
        any of it runs, then SpeechBrain's ``from_hparams`` builds the model
        (:class:`~speechbrain_mtmm.inference.loading.ExportPretrainer`
        fetches and checks the other files).

        Arguments
        ---------
        source : str or path-like
            The exported folder, or an HF hub id (``org/name``).
        hparams_file : str
            Its hyperparameters file.
        overrides : dict, optional
            Changes to the hyperparameters (``asr_source``,
            ``long_audio``, ``max_audio_seconds``, ``batch_size``, ...).
        savedir : str or path-like, optional
            Where the files go (None: used where they lie, the folder or
            the HF hub cache).
        trust_remote_code : bool
            Load a ``hyperparams.yaml`` with other tags than an export's,
            or a model naming a block class by import path (code from
            outside this package then runs): only for sources you trust.
        local_strategy : speechbrain.utils.fetching.LocalStrategy
            Symlink (default) or copy the files into ``savedir``.
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
            SpeechBrain's fetch options (revision, ...).
        **kwargs
            Passed to ``Pretrained.from_hparams`` (``run_opts``,
            ``transcriber``, ...).

        Returns
        -------
        MultimodalEmotionRecognizer

        Raises
        ------
        ExportLoadError
            One line naming the file or source: not an export, a hub id
            that does not resolve, a file that changed since the export,
            tags or classes that would run code.
        """
        source = export_source(source)
        fetched = {
            "savedir": savedir,
            "local_strategy": local_strategy,
            "fetch_config": fetch_config or FetchConfig(),
        }
        hparams, digests = _fetch_hparams(source, hparams_file, fetched)
        kind = check_trusted(hparams, trust_remote_code)
        overrides = dict(overrides or {})
        if kind == "legacy":  # made before custom_interface.py
            folder = _legacy_folder(source, hparams, hparams_file)
            names = [
                path.relative_to(folder).as_posix()
                for path in sorted(folder.rglob("*"))
                if path.is_file()
            ]
            names = files_to_load(dict.fromkeys(names))
            names.remove(EXPORT_INFO)
            verify_digests(folder, names, digests)
            values = plain_hparams(folder, overrides)
            check_labels(folder, values["model_config"])
            overrides.setdefault("model_folder", str(folder))
        return super().from_hparams(
            source=source,
            hparams_file=hparams_file,
            overrides=overrides,
            **fetched,
            **kwargs,
        )

    @classmethod
    def from_onnx(
        cls,
        source,
        int8=False,
        threads=None,
        overrides=None,
        savedir=None,
        local_strategy=LocalStrategy.SYMLINK,
        fetch_config=None,
        **kwargs,
    ):
        """Loads a model's ONNX graphs (``mtmm export --onnx``).

        The same paths, windows, warnings and results as
        :meth:`from_hparams`, computed by onnxruntime on the CPU. The
        ``hyperparams.yaml`` is read as plain YAML: nothing in it is built
        or run. Only ``hyperparams.yaml``, ``labels.txt`` and ``onnx/``
        are fetched, and checked against the export's SHA-256.

        Arguments
        ---------
        source : str or path-like
            The exported folder, or an HF hub id.
        int8 : bool
            Run the int8 graphs (``--onnx --int8``).
        threads : int, optional
            onnxruntime threads (None: its default).
        overrides : dict, optional
            As for :meth:`from_hparams`.
        savedir, local_strategy, fetch_config
            As for :meth:`from_hparams`.
        **kwargs
            ``transcriber``.

        Returns
        -------
        MultimodalEmotionRecognizer
        """
        source = export_source(source)
        fetched = {
            "savedir": savedir,
            "local_strategy": local_strategy,
            "fetch_config": fetch_config or FetchConfig(),
        }
        _, digests = _fetch_hparams(source, HYPERPARAMS, fetched)
        names = files_to_load(digests, onnx=True, int8=int8)
        if not any(name.endswith(".onnx") for name in names):
            raise OnnxBackendError(
                f"{source}: no {'int8 ' if int8 else ''}ONNX graphs in "
                "this export; export the model with --onnx"
                + (" --int8" if int8 else "")
            )
        folder = fetch_export(
            source, names, digests=digests, error=OnnxBackendError, **fetched
        )
        checked = True
        values = plain_hparams(folder, overrides)
        check_labels(folder, values["model_config"], OnnxBackendError)
        system = OnnxSystem(
            folder, values["model_config"], int8, threads, checked=checked
        )
        system.folder = folder
        return cls(
            modules={"system": system},
            hparams=values,
            run_opts={"device": "cpu"},
            **kwargs,
        )

    @property
    def system(self):
        """The :class:`~speechbrain_mtmm.MultimodalEmotionSystem`."""
        return self.mods.system

    @property
    def labels(self):
        """The class order of the classifier."""
        return self.system.labels

    @property
    def sample_rate(self):
        """The sample rate the model takes (inputs are resampled to it)."""
        return self.system.config["sample_rate"]

    @property
    def transcriber(self):
        """The ASR transcriber (built on first use), or None."""
        source = getattr(self.hparams, "asr_source", None)
        if self._transcriber is None and source:
            self._transcriber = ASRTranscriber(
                source,
                device=self.device,
                language=getattr(self.hparams, "asr_language", None),
                sample_rate=self.sample_rate,
            )
        return self._transcriber

    def predict_file(self, path, text=None):
        """Predicts one audio file, with its transcript if given.

        Arguments
        ---------
        path : str or path-like
            Any file ``load_audio`` reads (resampled, mixed down).
        text : str, optional
            The transcript (None or empty: ASR or audio-only).

        Returns
        -------
        dict
            The prediction, with ``file`` first.
        """
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path}: no such file")
        wav = load_audio(path, self.sample_rate)
        result = self._predict([_Utterance(str(path), wav, text)])[0]
        return {"file": str(path), **result}

    def predict_text(self, text):
        """Predicts from a transcript alone (the audio is masked).

        Arguments
        ---------
        text : str
            The transcript.

        Returns
        -------
        dict
            The prediction (``path`` is "text-only").
        """
        return self._predict([_Utterance("text", None, text)])[0]

    def predict_batch(self, wavs, wav_lens=None, texts=None):
        """Predicts a batch of waveforms and/or transcripts.

        Arguments
        ---------
        wavs : torch.Tensor or None
            ``(batch, samples)`` mono waveforms at ``sample_rate``,
            zero-padded; None for text-only input.
        wav_lens : torch.Tensor, optional
            ``(batch,)`` relative lengths (None: all full).
        texts : list of str or None, optional
            One transcript per utterance (None entries: missing).

        Returns
        -------
        list of dict
            One prediction per utterance.
        """
        if wavs is None and texts is None:
            raise ValueError("predict_batch needs wavs, texts or both")
        size = len(texts) if wavs is None else wavs.shape[0]
        texts = [None] * size if texts is None else list(texts)
        if len(texts) != size:
            raise ValueError(f"{len(texts)} texts for {size} waveforms")
        utterances = []
        for i, text in enumerate(texts):
            wav = None
            if wavs is not None:
                rel = 1.0 if wav_lens is None else float(wav_lens[i])
                wav = wavs[i, : round(rel * wavs.shape[1])]
            utterances.append(_Utterance(f"batch item {i}", wav, text))
        return self._predict(utterances)

    def forward(self, wavs, wav_lens=None, texts=None):
        """Same as :meth:`predict_batch`."""
        return self.predict_batch(wavs, wav_lens, texts)

    def _predict(self, utterances):
        for utt in utterances:
            self._choose_path(utt)
        windows = []  # (utterance index, waveform or None, weight)
        for index, utt in enumerate(utterances):
            pieces = self._windows(utt)
            utt.windows = len(pieces)
            for wav in pieces:
                weight = 1.0 if wav is None else float(len(wav))
                windows.append((index, wav, weight))
        probs, dims = self._run_windows(utterances, windows)
        return [
            self._result(utt, probs[i], dims[i])
            for i, utt in enumerate(utterances)
        ]

    def _choose_path(self, utt):
        """Sets ``utt.path`` and ``utt.text`` (transcribing if needed)."""
        modalities = self.system.config["modalities"]
        text = utt.text.strip() if utt.text and utt.text.strip() else None
        if "text" not in modalities:
            text = None  # a model trained without text never sees it
        has_audio = utt.wav is not None and "audio" in modalities
        asr = False
        if text is None and "text" in modalities and utt.wav is not None:
            if self.transcriber is not None:
                text = self.transcriber(utt.wav) or None
                asr = text is not None
        if has_audio:
            if text is None:
                utt.path = "audio-only"
            else:
                utt.path = "audio+asr" if asr else "audio+text"
        elif text is not None:
            utt.path = "text-only"
        else:
            needs = "a transcript" if utt.wav is not None else "audio or text"
            raise ValueError(f"{utt.name}: this model needs {needs}")
        utt.text = text

    def _windows(self, utt):
        """The audio windows of one utterance ([None] without audio)."""
        if utt.path == "text-only":
            return [None]
        limit = self.hparams.max_audio_seconds
        rate = self.sample_rate
        max_samples = None if limit is None else int(limit * rate)
        mode = self.hparams.long_audio
        windows = split_long_audio(utt.wav, max_samples, mode)
        if max_samples is not None and len(utt.wav) > max_samples:
            seconds = len(utt.wav) / rate
            if mode == "truncate":
                logger.warning(
                    f"{utt.name}: {seconds:.1f} s of audio truncated to "
                    f"max_audio_seconds={limit}"
                )
            else:
                logger.info(
                    f"{utt.name}: {seconds:.1f} s of audio split into "
                    f"{len(windows)} windows (max_audio_seconds={limit})"
                )
        return windows

    def _run_windows(self, utterances, windows):
        """Weighted mean class probabilities and dimensions per utterance."""
        n_classes = len(self.labels)
        probs = torch.zeros(len(utterances), n_classes)
        n_dims = len(trained_dimensions(self.system.config))
        dims = torch.zeros(len(utterances), n_dims)
        total = torch.zeros(len(utterances), 1)
        groups = {}  # same modalities present -> one forward pass
        for window in windows:
            utt = utterances[window[0]]
            key = (window[1] is not None, utt.text is not None)
            groups.setdefault(key, []).append(window)
        batch_size = getattr(self.hparams, "batch_size", 8)
        for group in groups.values():
            for start in range(0, len(group), batch_size):
                part = group[start : start + batch_size]
                texts = [utterances[index].text for index, _, _ in part]
                wavs = [wav for _, wav, _ in part]
                part_probs, part_dims = self._forward(wavs, texts)
                for row, (index, _, weight) in enumerate(part):
                    probs[index] += weight * part_probs[row]
                    dims[index] += weight * part_dims[row]
                    total[index] += weight
        return probs / total, dims / total

    def _forward(self, wavs, texts):
        """One forward pass: a masked modality is one zero frame, exactly
        as Random Modality Masking fed it in training."""
        with torch.no_grad(), self.inference_ctx:
            audio = self._encode("audio", wavs)
            text = self._encode("text", texts)
            out = self.system(*audio, *text)
        for name in ("logits", "dims"):
            if name in out and not torch.isfinite(out[name]).all():
                where = getattr(self.system, "folder", None) or getattr(
                    self.hparams, "model_folder", "the model"
                )
                raise FloatingPointError(
                    f"{where}: the model predicts non-finite values "
                    f"({name}); its weights may be corrupt"
                )
        # an output that was not trained is not there: zero columns
        rows = len(wavs)
        probs = out.get("logits", torch.zeros(rows, len(self.labels)))
        dims = out.get("dims", torch.zeros(rows, 0))
        return (
            torch.softmax(probs.float(), dim=-1).cpu(),
            dims.float().cpu(),
        )

    def _encode(self, modality, inputs):
        if inputs[0] is None:
            return self.system.masked(modality, len(inputs), self.device)
        if modality == "text":
            inputs = [self.system.text_encoder.tokenize(t) for t in inputs]
        padded, lens = batch_pad_right(inputs)
        return self.system.encode(
            modality, padded.to(self.device), lens.to(self.device)
        )

    def _result(self, utt, probs, dims):
        labels = self.labels
        result = {}
        if classes_trained(self.system.config):
            result["label"] = labels[int(probs.argmax())]
            result["probs"] = {
                label: float(p) for label, p in zip(labels, probs)
            }
        names = trained_dimensions(self.system.config)
        # exports from before rating_scale was recorded: IEMOCAP's 1-5
        scale = self.system.config.get("rating_scale", RATING_SCALE)
        for name, value in zip(names, dims):
            result[name] = float(value)
        for name, value in zip(names, dims):
            result[rating_key(name, scale)] = to_rating(float(value), scale)
        result["path"] = utt.path
        result["text_used"] = (
            None
            if utt.text is None
            else self.system.text_encoder.visible_text(utt.text)
        )
        result["windows"] = utt.windows
        warning = self._audio_warning(utt)
        if warning:
            result["warning"] = warning
        return result

    def _audio_warning(self, utt):
        """Why the audio may not support the prediction (or None)."""
        if utt.wav is None or utt.path == "text-only":
            return None
        seconds = len(utt.wav) / self.sample_rate
        if seconds < SHORT_AUDIO_SECONDS:
            return f"very short audio ({seconds:.2f} s)"
        if float(utt.wav.float().pow(2).mean().sqrt()) < SILENCE_RMS:
            return "silent audio (RMS below 1e-4)"
        return None


def _fetch_hparams(source, hparams_file, fetched):
    """Fetches ``hyperparams.yaml`` and ``export_info.json`` and checks the
    former against the latter's digests (both must be there: nothing is
    guessed)."""
    path = fetch_file(source, hparams_file, **fetched)
    if Path(source).is_dir() and not (Path(source) / EXPORT_INFO).is_file():
        raise ExportLoadError(
            f"{Path(source) / EXPORT_INFO}: missing; {source} has "
            f"{hparams_file} but no {EXPORT_INFO}: not a model written by "
            "mtmm export, or one whose digests were deleted (its files "
            "cannot be checked); fetch or export the model again (a run "
            "folder? export it with mtmm export --run <run> --out <model>)"
        )
    info = fetch_file(source, EXPORT_INFO, **fetched)
    digests = read_digests(info)
    verify_digests(fetched_root(path, hparams_file), [hparams_file], digests)
    return path, digests


def _legacy_folder(source, hparams, hparams_file):
    """The folder of an export made before ``custom_interface.py`` (its
    files are not listed anywhere: it loads from a local folder only)."""
    if not Path(source).is_dir():
        raise ExportLoadError(
            f"{source}: exported before custom_interface.py (a model_folder "
            "placeholder), which loads from a local folder only; download "
            "it, or export the run again"
        )
    return Path(source)
