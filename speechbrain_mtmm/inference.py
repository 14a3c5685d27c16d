"""Inference with an exported model: classes + valence/arousal per file.

``mtmm-export`` (:mod:`speechbrain_mtmm.export`) turns a trained run into a
self-contained folder; :class:`MultimodalEmotionRecognizer`, a SpeechBrain
``Pretrained`` interface, loads it with ``from_hparams`` and predicts::

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
  (:func:`speechbrain_mtmm.masked_modality_features`);
* ``"text-only"``: no audio; the audio side is masked the same way.

Audio goes through :func:`speechbrain_mtmm.data.audio.load_audio`: any
sample rate is resampled to 16 kHz and stereo is mixed down, with a logged
warning. Audio longer than ``max_audio_seconds`` (the crop length of the
training run) is, with ``long_audio: chunk`` (default), split into equal
windows of at most that length, every window paired with the whole
transcript; class probabilities and dimensions are averaged over the
windows, weighted by their length. ``long_audio: truncate`` keeps the first
``max_audio_seconds`` only, like the recipe's test stage.

Run as ``python -m speechbrain_mtmm.inference export|predict ...``: the
same as the ``mtmm-export`` and ``mtmm-predict`` commands.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.data_utils import batch_pad_right
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.encoders import (
    FbankAudioEncoder,
    HFAudioEncoder,
    HFTextEncoder,
    TokenEmbeddingTextEncoder,
)
from speechbrain_mtmm.losses import DIMENSIONS
from speechbrain_mtmm.nnet.masking import masked_modality_features

logger = get_logger(__name__)

PATHS = ("audio+text", "audio+asr", "audio-only", "text-only")
LONG_AUDIO_MODES = ("chunk", "truncate")


class _WeightsFromCheckpoint:
    """HF encoder built from its config alone: the exported checkpoint
    holds the fine-tuned weights, so the pretrained ones are not needed
    (an export stores the big weights once, in ``<modality>_encoder.ckpt``).
    """

    def _from_pretrained(
        self, source, save_path, cache_dir, device=None, **kwargs
    ):
        self.model = self.auto_class.from_config(self.config)


class _ExportedHFAudioEncoder(_WeightsFromCheckpoint, HFAudioEncoder):
    """``HFAudioEncoder`` without the pretrained weights."""


class _ExportedHFTextEncoder(_WeightsFromCheckpoint, HFTextEncoder):
    """``HFTextEncoder`` without the pretrained weights."""


def build_exported_audio_encoder(source, layer=-1, light_size=128):
    """The audio encoder of an exported model, weights left to the ckpt.

    Arguments
    ---------
    source : str
        "fbank", or a HF hub id or folder holding the model's config and
        feature-extractor config (weights are not read).
    layer : int
        Hidden state used (as in training).
    light_size : int
        Width of the "fbank" encoder.

    Returns
    -------
    torch.nn.Module
        The encoder, frozen, with untrained weights.

    Example
    -------
    >>> build_exported_audio_encoder("fbank", light_size=16).output_size
    16
    """
    if source == "fbank":
        return FbankAudioEncoder(d_model=light_size, freeze="frozen")
    return _ExportedHFAudioEncoder(source, freeze="frozen", layer=layer)


def build_exported_text_encoder(
    source, layer=-1, max_length=128, light_size=128
):
    """The text encoder of an exported model, weights left to the ckpt.

    Arguments
    ---------
    source : str
        "hashing", or a HF hub id or folder holding the model's config and
        tokenizer (weights are not read).
    layer : int
        Hidden state used (as in training).
    max_length : int
        Tokens kept per transcript (as in training).
    light_size : int
        Width of the "hashing" encoder.

    Returns
    -------
    torch.nn.Module
        The encoder, frozen, with untrained weights.

    Example
    -------
    >>> encoder = build_exported_text_encoder("hashing", light_size=16)
    >>> encoder.output_size, encoder.tokenize("Hello there").tolist()[0]
    (16, 1)
    """
    if source == "hashing":
        return TokenEmbeddingTextEncoder(
            d_model=light_size, max_length=max_length, freeze="frozen"
        )
    return _ExportedHFTextEncoder(
        source, freeze="frozen", layer=layer, max_length=max_length
    )


def load_state_dict_strict(module, path):
    """Pretrainer hook: loads ``path`` into ``module``, every key matching.

    SpeechBrain's default transfer hook only warns about missing or
    unexpected parameters; an exported model must match exactly.

    Arguments
    ---------
    module : torch.nn.Module
        The module built from the hyperparameters.
    path : str or path-like
        A state-dict file (``<name>.ckpt``).

    Raises
    ------
    RuntimeError
        Naming the file, when the weights do not fit the module.

    Example
    -------
    >>> path = getfixture("tmpdir") / "linear.ckpt"
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    >>> load_state_dict_strict(torch.nn.Linear(2, 3), path)
    >>> load_state_dict_strict(torch.nn.Linear(3, 3), path)
    Traceback (most recent call last):
    ...
    RuntimeError: ...linear.ckpt: the weights do not fit the model ...
    """
    state = torch.load(path, map_location="cpu")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise RuntimeError(
            f"{path}: the weights do not fit the model built from "
            f"hyperparams.yaml ({error})"
        ) from None


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


class ASRTranscriber:
    """Transcribes a 16 kHz waveform with a transformers ASR pipeline.

    Any model the ``automatic-speech-recognition`` pipeline accepts works
    (Whisper, wav2vec 2.0 CTC, ...); audio longer than 30 s is transcribed
    in 30 s chunks by the pipeline.

    Arguments
    ---------
    source : str
        HF hub id (e.g. "openai/whisper-small") or local folder.
    device : str
        Where the ASR model runs.
    language : str, optional
        Passed to Whisper's ``generate`` (None: detected).
    sample_rate : int
        Rate of the waveforms given to ``__call__``.

    Example
    -------
    >>> transcriber = ASRTranscriber("openai/whisper-small")  # doctest: +SKIP
    >>> transcriber(torch.zeros(16000))  # doctest: +SKIP
    ''
    """

    def __init__(self, source, device="cpu", language=None, sample_rate=16000):
        from transformers import pipeline

        try:
            self.pipeline = pipeline(
                "automatic-speech-recognition",
                model=str(source),
                device=device,
                chunk_length_s=30,
                ignore_warning=True,
            )
        except (OSError, ValueError) as error:
            raise ValueError(
                f"asr_source {source}: cannot load an ASR model ({error})"
            ) from None
        self.generate_kwargs = {"language": language} if language else {}
        self.sample_rate = sample_rate

    def __call__(self, wav):
        """The transcript of one waveform.

        Arguments
        ---------
        wav : torch.Tensor
            1-D waveform at ``sample_rate``.

        Returns
        -------
        str
            The transcript, stripped (may be empty).
        """
        inputs = {"raw": wav.cpu().numpy(), "sampling_rate": self.sample_rate}
        kwargs = {}
        if self.generate_kwargs:
            kwargs["generate_kwargs"] = self.generate_kwargs
        return self.pipeline(inputs, **kwargs)["text"].strip()


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
    folder written by ``mtmm-export``); ``run_opts={"device": "cuda"}``
    moves it to a GPU, ``overrides={"asr_source": "openai/whisper-small"}``
    adds a transcriber for files without a transcript, ``overrides=
    {"long_audio": "truncate"}`` crops long audio instead of windowing it.

    Every prediction is a dict: ``label``, ``probs`` ({label: p}),
    ``valence``, ``arousal`` (0-1, and ``dominance`` for 3-dimension
    models), the same on the 1-5 rating scale (``valence_1to5``, ...),
    ``path`` (which inputs were used, see the module docstring),
    ``text_used`` (the transcript, None when the text was masked) and
    ``windows`` (how many audio windows were averaged).

    Arguments
    ---------
    modules : dict
        ``audio_encoder``, ``text_encoder`` and ``model``.
    hparams : dict
        At least ``labels``, ``n_dims``, ``sample_rate``,
        ``max_audio_seconds``, ``long_audio``, ``modalities``.
    run_opts : dict, optional
        SpeechBrain run options (``device``, ...).
    freeze_params : bool
        Eval mode and no gradients (the default).
    transcriber : callable, optional
        ``transcriber(wav) -> str`` for a 16 kHz waveform; replaces the
        one built from ``asr_source``.

    Example
    -------
    >>> from speechbrain_mtmm import EmotionHeads, MultimodalEmotionModel
    >>> from speechbrain_mtmm.nnet.builders import build_fusion
    >>> modules = {
    ...     "audio_encoder": build_exported_audio_encoder("fbank", -1, 16),
    ...     "text_encoder": build_exported_text_encoder("hashing", -1, 32, 16),
    ...     "model": MultimodalEmotionModel(
    ...         build_fusion("bridge_crossed", 16, nhead=2, num_tokens=4),
    ...         EmotionHeads(16, n_classes=4), d_model=16),
    ... }
    >>> hparams = {"labels": ["neu", "hap", "sad", "ang"], "n_dims": 2,
    ...     "sample_rate": 16000, "max_audio_seconds": 10.0,
    ...     "long_audio": "chunk", "modalities": ["audio", "text"]}
    >>> recognizer = MultimodalEmotionRecognizer(
    ...     modules, hparams, run_opts={"device": "cpu"})
    >>> wavs = torch.randn(2, 16000) * 0.1
    >>> results = recognizer.predict_batch(
    ...     wavs, torch.tensor([1.0, 0.5]), ["I got the job!", None])
    >>> [r["path"] for r in results], results[0]["label"] in hparams["labels"]
    (['audio+text', 'audio-only'], True)
    >>> 1 <= results[1]["valence_1to5"] <= 5, results[1]["text_used"]
    (True, None)
    >>> recognizer.predict_text("I miss him so much.")["path"]
    'text-only'
    """

    HPARAMS_NEEDED = [
        "labels",
        "n_dims",
        "sample_rate",
        "max_audio_seconds",
        "long_audio",
        "modalities",
    ]
    MODULES_NEEDED = ["audio_encoder", "text_encoder", "model"]

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
        cls, source, hparams_file="hyperparams.yaml", overrides=None, **kwargs
    ):
        """Loads a model folder written by ``mtmm-export``.

        Arguments
        ---------
        source : str or path-like
            The exported folder.
        hparams_file : str
            Its hyperparameters file.
        overrides : dict, optional
            Changes to the hyperparameters (``asr_source``,
            ``long_audio``, ``max_audio_seconds``, ``batch_size``, ...).
        **kwargs
            Passed to ``Pretrained.from_hparams`` (``run_opts``,
            ``transcriber``, ...).

        Returns
        -------
        MultimodalEmotionRecognizer
        """
        folder = Path(source).expanduser().resolve()
        if not (folder / hparams_file).is_file():
            raise FileNotFoundError(
                f"{source}: no {hparams_file} here; give a model folder "
                "written by mtmm-export"
            )
        # the folder's own location, for the encoder copies inside it
        overrides = {"model_folder": str(folder), **(overrides or {})}
        return super().from_hparams(
            source=str(folder),
            hparams_file=hparams_file,
            overrides=overrides,
            **kwargs,
        )

    @property
    def transcriber(self):
        """The ASR transcriber (built on first use), or None."""
        source = getattr(self.hparams, "asr_source", None)
        if self._transcriber is None and source:
            self._transcriber = ASRTranscriber(
                source,
                device=self.device,
                language=getattr(self.hparams, "asr_language", None),
                sample_rate=self.hparams.sample_rate,
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
        wav = load_audio(path, self.hparams.sample_rate)
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
        modalities = self.hparams.modalities
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
        rate = self.hparams.sample_rate
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
        n_classes = len(self.hparams.labels)
        probs = torch.zeros(len(utterances), n_classes)
        dims = torch.zeros(len(utterances), self.hparams.n_dims)
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
            out = self.mods.model(*audio, *text)
        return (
            torch.softmax(out["logits"].float(), dim=-1).cpu(),
            out["dims"].float().cpu(),
        )

    def _encode(self, modality, inputs):
        encoder = self.mods[f"{modality}_encoder"]
        if inputs[0] is None:
            return masked_modality_features(
                len(inputs), encoder.output_size, self.device
            )
        if modality == "text":
            inputs = [encoder.tokenize(text) for text in inputs]
        padded, lens = batch_pad_right(inputs)
        padded, lens = padded.to(self.device), lens.to(self.device)
        feats = encoder(padded, lens)
        return feats, encoder.output_lens(lens, padded.shape[1], feats.shape[1])

    def _result(self, utt, probs, dims):
        labels = self.hparams.labels
        result = {
            "label": labels[int(probs.argmax())],
            "probs": {label: float(p) for label, p in zip(labels, probs)},
        }
        names = DIMENSIONS[: self.hparams.n_dims]
        for name, value in zip(names, dims):
            result[name] = float(value)
        for name, value in zip(names, dims):
            result[f"{name}_1to5"] = 1.0 + 4.0 * float(value)
        result["path"] = utt.path
        result["text_used"] = utt.text
        result["windows"] = utt.windows
        return result


def main(argv=None):
    """``python -m speechbrain_mtmm.inference export|predict ...``.

    Arguments
    ---------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code of the sub-command (2: unknown sub-command).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in ("export", "predict"):
        print(
            "usage: python -m speechbrain_mtmm.inference {export,predict} "
            "... (see --help of each)",
            file=sys.stderr,
        )
        return 2
    if argv[0] == "export":
        from speechbrain_mtmm.export import main as command
    else:
        from speechbrain_mtmm.predict import main as command
    return command(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
