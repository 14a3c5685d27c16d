"""Ensembles: several exported models that predict as one.

The systems at the top of the MSP-Podcast and Odyssey 2024 challenges
average several models (e.g. every fold of a cross-validation sweep).
:class:`EnsembleRecognizer` holds several
:class:`~speechbrain_mtmm.inference.recognizer.MultimodalEmotionRecognizer`
(PyTorch or ONNX, mixed as wished) and averages their class probabilities
and their dimensions, weighted (weights normalised to sum to 1; equal by
default). The label is the class of the highest averaged probability and
the ratings are the averaged dimensions on the shared rating scale.

Before predicting anything it checks that the members predict the same
classes **in the same order** (exports of one recipe do; a different
order is refused rather than reordered by name, since it means a
different ``labels`` setting and most likely a different label map), the
same dimensions and the same rating scale; otherwise it refuses in one
line naming the two exports. An ensemble of one model returns that
model's predictions unchanged; with several, each prediction also
carries ``ensemble``, the number of members.

A transcript that is missing is transcribed once (by the first member
with an ASR model) and given to every member. The ``path``,
``text_used``, ``windows`` and ``warning`` fields are the first member's.

SpeechBrain and transformers average no set of ``Pretrained`` interfaces
for us; this is the small piece that does.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import math
from pathlib import Path

from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.run_folder import (
    EXPORT_INFO,
    RATING_SCALE,
    classes_trained,
    rating_key,
    to_rating,
    trained_dimensions,
)


class EnsembleError(ValueError):
    """Members that cannot be averaged, or weights that do not fit."""


def model_folders(models):
    """The member folders of ``--model`` arguments: a sweep's export
    folder (``mtmm export --sweep``, whose models lie in
    ``<protocol>_fold<k>/seed<s>/``) stands for all its models, in name
    order; anything else (a model folder, a hub id) for itself.

    Arguments
    ---------
    models : str or sequence of str
        Model folders, hub ids or sweep export folders.

    Returns
    -------
    list of str
        One entry per member.

    Example
    -------
    >>> root = getfixture("tmp_path")
    >>> for name in ("speaker_fold2/seed1", "speaker_fold1/seed1"):
    ...     (root / name).mkdir(parents=True)
    ...     _ = (root / name / "export_info.json").write_text("{}")
    >>> members = model_folders([str(root), "org/model"])
    >>> [Path(m).relative_to(root).as_posix() for m in members[:2]]
    ['speaker_fold1/seed1', 'speaker_fold2/seed1']
    >>> members[2]
    'org/model'
    """
    if isinstance(models, (str, Path)):
        models = [models]
    folders = []
    for model in models:
        path = Path(model)
        inside = []
        if path.is_dir() and not (path / EXPORT_INFO).is_file():
            inside = sorted(path.glob(f"*/*/{EXPORT_INFO}"))
        folders += [str(info.parent) for info in inside] or [str(model)]
    return folders


def normalised_weights(weights, count):
    """Member weights that sum to 1 (None: equal).

    Arguments
    ---------
    weights : sequence of float or None
        One non-negative weight per member, not all 0.
    count : int
        The number of members.

    Returns
    -------
    list of float

    Raises
    ------
    EnsembleError
        For a count that is not the members', a negative, non-finite or
        all-zero weight.

    Example
    -------
    >>> normalised_weights([3, 1], 2)
    [0.75, 0.25]
    >>> normalised_weights(None, 4)
    [0.25, 0.25, 0.25, 0.25]
    >>> normalised_weights([0.6, 0.4], 3)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.ensemble.EnsembleError: 2 weights for 3 \
models: give one weight per --model
    """
    if weights is None:
        return [1.0 / count] * count
    weights = [float(w) for w in weights]
    if len(weights) != count:
        raise EnsembleError(
            f"{len(weights)} weights for {count} models: give one weight "
            "per --model"
        )
    if any(not math.isfinite(w) or w < 0 for w in weights) or not sum(weights):
        raise EnsembleError(
            f"weights {weights}: each must be a finite number >= 0, and "
            "not all 0"
        )
    total = sum(weights)
    return [w / total for w in weights]


def output_facts(recognizer):
    """What a member's predictions mean: its classes (in order), its
    dimensions and its rating scale.

    Arguments
    ---------
    recognizer : MultimodalEmotionRecognizer
        A loaded model (PyTorch or ONNX).

    Returns
    -------
    dict
        ``classes``, ``dimensions`` and ``rating scale`` (lists).

    Example
    -------
    >>> from types import SimpleNamespace
    >>> config = {"labels": ["neu", "hap"], "n_dims": 2,
    ...           "rating_scale": [1, 7]}
    >>> output_facts(SimpleNamespace(
    ...     labels=["neu", "hap"], system=SimpleNamespace(config=config)))
    {'classes': ['neu', 'hap'], 'dimensions': ['valence', 'arousal'], \
'rating scale': [1, 7]}
    """
    config = recognizer.system.config
    trained = classes_trained(config)
    return {
        "classes": list(recognizer.labels) if trained else [],
        "dimensions": list(trained_dimensions(config)),
        "rating scale": list(config.get("rating_scale", RATING_SCALE)),
    }


def check_members(recognizers, names):
    """Refuses members whose predictions cannot be averaged, in one line
    naming the first member and the one that differs from it.

    Arguments
    ---------
    recognizers : sequence
        The loaded members.
    names : sequence of str
        Their names (the ``--model`` arguments).

    Raises
    ------
    EnsembleError
        When a member's classes (or their order), dimensions or rating
        scale differ from the first member's.

    Example
    -------
    >>> from types import SimpleNamespace
    >>> def model(labels):
    ...     config = {"labels": labels, "n_dims": 2, "rating_scale": [1, 5]}
    ...     return SimpleNamespace(
    ...         labels=labels, system=SimpleNamespace(config=config))
    >>> check_members([model(["neu", "hap"])] * 2, ["a", "b"])
    >>> check_members([model(["neu", "hap"]), model(["hap", "neu"])],
    ...               ["a", "b"])
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.ensemble.EnsembleError: a and b cannot be \
averaged: their classes differ (['neu', 'hap'] and ['hap', 'neu']); \
ensemble models trained for the same outputs
    """
    first = output_facts(recognizers[0])
    for name, recognizer in zip(names[1:], recognizers[1:]):
        facts = output_facts(recognizer)
        for key, value in first.items():
            if facts[key] != value:
                raise EnsembleError(
                    f"{names[0]} and {name} cannot be averaged: their "
                    f"{key} differ ({value} and {facts[key]}); ensemble "
                    "models trained for the same outputs"
                )


class EnsembleRecognizer:
    """Several recognizers that predict as one (module docstring).

    Arguments
    ---------
    recognizers : sequence of MultimodalEmotionRecognizer
        The members (PyTorch or ONNX backends).
    weights : sequence of float, optional
        One weight per member (normalised; default equal).
    names : sequence of str, optional
        The members' names in messages (default: their folders).

    Raises
    ------
    EnsembleError
        No member, members that cannot be averaged, or weights that do
        not fit.

    Example
    -------
    >>> from speechbrain_mtmm.system import PAPER_CONFIG
    >>> from speechbrain_mtmm import MultimodalEmotionSystem
    >>> from speechbrain_mtmm.inference.recognizer import (
    ...     MultimodalEmotionRecognizer)
    >>> config = {**PAPER_CONFIG, "d_model": 16, "n_heads": 2,
    ...           "refinement_ffn": 32, "bridge_tokens": 4,
    ...           "audio": {"source": "fbank", "layers": [-1],
    ...                     "light_size": 16},
    ...           "text": {"source": "hashing", "layers": [-1],
    ...                    "max_length": 32, "light_size": 16}}
    >>> def member():
    ...     return MultimodalEmotionRecognizer(
    ...         {"system": MultimodalEmotionSystem(config, freeze="frozen")},
    ...         {"max_audio_seconds": 10.0, "long_audio": "chunk"},
    ...         run_opts={"device": "cpu"})
    >>> a, b = member(), member()
    >>> pair = EnsembleRecognizer([a, b], weights=[3, 1], names=["a", "b"])
    >>> mean = pair.predict_text("I got the job!")
    >>> one, two = a.predict_text("I got the job!"), b.predict_text(
    ...     "I got the job!")
    >>> round(mean["valence"] - (0.75 * one["valence"]
    ...                          + 0.25 * two["valence"]), 6)
    0.0
    >>> mean["ensemble"]
    2
    """

    def __init__(self, recognizers, weights=None, names=None):
        self.members = list(recognizers)
        if not self.members:
            raise EnsembleError("an ensemble needs at least one model")
        if names is None:
            names = [
                str(getattr(r.system, "folder", None) or f"model {i + 1}")
                for i, r in enumerate(self.members)
            ]
        self.names = [str(name) for name in names]
        self.weights = normalised_weights(weights, len(self.members))
        check_members(self.members, self.names)

    @property
    def system(self):
        """The first member's system (all share classes, dimensions and
        rating scale)."""
        return self.members[0].system

    @property
    def labels(self):
        """The class order shared by the members."""
        return self.members[0].labels

    def predict_file(self, path, text=None):
        """Predicts one audio file (see the recognizer's ``predict_file``).

        Arguments
        ---------
        path : str or path-like
            The audio file.
        text : str, optional
            Its transcript (None: transcribed once, or audio-only).

        Returns
        -------
        dict
            The averaged prediction, with ``file`` first.
        """
        if len(self.members) == 1:
            return self.members[0].predict_file(path, text)
        text, heard = self._transcript(path, text)
        results = [m.predict_file(path, text) for m in self.members]
        result = self.average(results)
        if heard and result.get("path") == "audio+text":
            result["path"] = "audio+asr"
        return result

    def predict_text(self, text):
        """Predicts from a transcript alone.

        Arguments
        ---------
        text : str
            The transcript.

        Returns
        -------
        dict
            The averaged prediction.
        """
        results = [m.predict_text(text) for m in self.members]
        return self.average(results)

    def predict_batch(self, wavs, wav_lens=None, texts=None):
        """Predicts a batch (see the recognizer's ``predict_batch``).

        Arguments
        ---------
        wavs : torch.Tensor or None
            ``(batch, samples)`` waveforms, or None for text only.
        wav_lens : torch.Tensor, optional
            Relative lengths.
        texts : list of str, optional
            Transcripts.

        Returns
        -------
        list of dict
            One averaged prediction per utterance.
        """
        if len(self.members) == 1:
            return self.members[0].predict_batch(wavs, wav_lens, texts)
        heard = []
        member = self._transcribing_member()
        if wavs is not None and member is not None:
            texts = [None] * wavs.shape[0] if texts is None else list(texts)
            for i, text in enumerate(texts):
                heard.append(False)
                if text and text.strip():
                    continue
                rel = 1.0 if wav_lens is None else float(wav_lens[i])
                texts[i] = member.transcriber(
                    wavs[i, : round(rel * wavs.shape[1])]
                )
                heard[i] = bool(texts[i])
                texts[i] = texts[i] or None
        batches = [m.predict_batch(wavs, wav_lens, texts) for m in self.members]
        results = [self.average(list(rows)) for rows in zip(*batches)]
        for result, asr in zip(results, heard):
            if asr and result.get("path") == "audio+text":
                result["path"] = "audio+asr"
        return results

    def average(self, results):
        """The weighted mean of the members' predictions of one input.

        Arguments
        ---------
        results : list of dict
            One prediction per member, in member order.

        Returns
        -------
        dict
            The first member's prediction with the averaged ``probs``,
            ``label``, dimensions and ratings, and ``ensemble`` (the
            member count) when there are several; an ensemble of one
            returns its member's prediction unchanged.
        """
        if len(results) == 1:
            return results[0]
        combined = dict(results[0])
        weights = self.weights
        if "probs" in combined:
            probs = {
                label: sum(
                    w * r["probs"][label] for w, r in zip(weights, results)
                )
                for label in self.labels
            }
            combined["label"] = max(self.labels, key=probs.__getitem__)
            combined["probs"] = probs
        config = self.system.config
        scale = config.get("rating_scale", RATING_SCALE)
        for name in trained_dimensions(config):
            if name in combined:
                value = sum(w * r[name] for w, r in zip(weights, results))
                combined[name] = value
                combined[rating_key(name, scale)] = to_rating(value, scale)
        combined["ensemble"] = len(results)
        return combined

    def _transcribing_member(self):
        """The first member that reads text and has an ASR model (or
        None): it transcribes for all."""
        for member in self.members:
            config = member.system.config
            if "text" in config["modalities"] and member.transcriber:
                return member
        return None

    def _transcript(self, path, text):
        """The transcript every member gets, and whether ASR made it."""
        if text and text.strip():
            return text, False
        member = self._transcribing_member()
        if member is None or not Path(path).is_file():
            return text, False
        heard = member.transcriber(load_audio(path, member.sample_rate))
        return heard or None, bool(heard)
