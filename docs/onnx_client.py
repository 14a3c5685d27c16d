"""Runs an exported model's ONNX graphs without speechbrain-mtmm.

``mtmm export --onnx`` writes ``<model>/onnx/``: three graphs (audio
encoder, text encoder, head), the tokenizer files and ``onnx_info.json``,
which says everything a client needs: each graph's inputs and outputs, how
to feed audio and text, what stands for a missing modality, what the
outputs mean, how long audio is windowed, and the SHA-256 of every file.
This client reads only that folder, and needs only numpy, onnxruntime,
soundfile and (for a transformers tokenizer) transformers::

    pip install numpy onnxruntime soundfile transformers
    python docs/onnx_client.py my_model/onnx speech.wav --text "I did it!"
    python docs/onnx_client.py my_model/onnx --text "I did it!"  # text only

It gives the predictions of ``MultimodalEmotionRecognizer.from_onnx``
(``tests/test_onnx_info.py`` checks it against the PyTorch recognizer),
but does not resample: give it audio at the model's sample rate. Every
name it uses comes from ``onnx_info.json``; port it to another language by
following the same fields.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import argparse
import hashlib
import json
import math
import re
import zlib
from pathlib import Path

import numpy as np
import onnxruntime
import soundfile

try:  # only for a model whose tokenizer is a transformers one
    from transformers import AutoTokenizer
except ImportError:
    AutoTokenizer = None

INFO = "onnx_info.json"


class OnnxEmotionClient:
    """An exported model's graphs, driven by its ``onnx_info.json``.

    Arguments
    ---------
    folder : str or path-like
        The ``onnx/`` folder of an exported model.
    int8 : bool
        Run the int8 graphs (exported with ``--int8``).

    Raises
    ------
    ValueError
        A file missing, changed since the export, or not covered by the
        digests of ``onnx_info.json``.

    Example
    -------
    >>> client = OnnxEmotionClient("my_model/onnx")  # doctest: +SKIP
    >>> client.predict(text="I got the job!")["path"]  # doctest: +SKIP
    'text-only'
    """

    def __init__(self, folder, int8=False):
        self.folder = Path(folder)
        self.info = json.loads((self.folder / INFO).read_text("utf-8"))
        verify_digests(self.folder, self.info)
        key = "int8_file" if int8 else "file"
        self.sessions = {
            name: onnxruntime.InferenceSession(
                str(self.folder / graph[key]),
                providers=["CPUExecutionProvider"],
            )
            for name, graph in self.info["graphs"].items()
        }
        self.modalities = self.info["modalities"]
        text = self.modalities["text"]
        self.tokenizer = None
        if text["used"] and text["tokenizer"]["type"] == "transformers":
            if AutoTokenizer is None:
                raise ValueError("this model's tokenizer needs transformers")
            folder = self.folder / text["tokenizer"]["folder"]
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder))

    @property
    def sample_rate(self):
        """The sample rate the audio graph takes (None without one)."""
        return self.modalities["audio"].get("sample_rate")

    def tokenize(self, text):
        """Token ids of one transcript, as ``onnx_info.json`` says.

        Arguments
        ---------
        text : str
            The transcript (already stripped).

        Returns
        -------
        list of int
        """
        spec = self.modalities["text"]["tokenizer"]
        if spec["type"] == "transformers":
            return list(self.tokenizer(text, **spec["call"])[spec["ids"]])
        if spec["type"] != "hashing":
            raise ValueError(f"unknown tokenizer type {spec['type']!r}")
        words = re.findall(spec["pattern"], text.lower())
        first, size = spec["first_id"], spec["vocab_size"]
        ids = [] if spec["bos_id"] is None else [spec["bos_id"]]
        ids += [first + zlib.crc32(w.encode()) % (size - first) for w in words]
        return ids[: spec["max_length"]]

    def predict(self, wav=None, text=None):
        """Class probabilities and dimensions of one input.

        Arguments
        ---------
        wav : numpy.ndarray, optional
            Mono float32 waveform in [-1, 1] at :attr:`sample_rate`.
        text : str, optional
            The transcript (None or empty: missing).

        Returns
        -------
        dict
            ``label``, ``probs`` ({label: p}), each dimension on 0-1 and
            on the rating scale (``<name>_rating``), ``path``, ``windows``.
        """
        text = text.strip() if text and text.strip() else None
        if not self.modalities["text"]["used"]:
            text = None
        if wav is not None and not self.modalities["audio"]["used"]:
            wav = None
        if wav is None and text is None:
            raise ValueError("this model needs audio or a transcript")
        windows = [None] if wav is None else self.windows(wav)
        feeds = {}
        feeds.update(self._modality("audio", windows))
        feeds.update(self._modality("text", [text] * len(windows)))
        # the outputs the model was trained for: classes, dimensions or both
        names = list(self.info["outputs"])
        values = dict(zip(names, self.sessions["head"].run(names, feeds)))
        weights = np.array([1.0 if w is None else len(w) for w in windows])
        weights = weights[:, None] / weights.sum()
        mean = {
            name: ((softmax(v) if self._is_classes(name) else v) * weights).sum(
                axis=0
            )
            for name, v in values.items()
        }
        return self._result(mean, wav, text, len(windows))

    def _is_classes(self, name):
        """Whether a head output holds class scores (it has labels)."""
        return "labels" in self.info["outputs"][name]

    def windows(self, wav):
        """The long-audio windows of a waveform (``long_audio``).

        Arguments
        ---------
        wav : numpy.ndarray
            The waveform.

        Returns
        -------
        list of numpy.ndarray
        """
        spec = self.info["long_audio"]
        seconds = spec["max_audio_seconds"]
        if seconds is None or len(wav) <= seconds * self.sample_rate:
            return [wav]
        limit = int(seconds * self.sample_rate)
        if spec["mode"] == "truncate":
            return [wav[:limit]]
        size = math.ceil(len(wav) / math.ceil(len(wav) / limit))
        return [wav[start : start + size] for start in range(0, len(wav), size)]

    def _modality(self, modality, values):
        """The head's feeds for one modality: its encoder graph's outputs,
        or the missing-modality tensors."""
        spec = self.modalities[modality]
        head = spec["head_inputs"]
        if not spec["used"] or values[0] is None:
            missing = self.info["missing_modality"]
            feats = np.full(
                (len(values), 1, spec["feature_size"]),
                missing["feats"]["value"],
                dtype=missing["feats"]["dtype"],
            )
            lens = np.full(
                len(values),
                missing["lens"]["value"],
                dtype=missing["lens"]["dtype"],
            )
            return {head["feats"]: feats, head["lens"]: lens}
        if modality == "text":
            values = [self.tokenize(text) for text in values]
            pad = spec["tokenizer"]["pad_id"]
        else:
            pad = 0.0
        longest = max(len(v) for v in values)
        inputs = np.full((len(values), longest), pad, dtype=spec["dtype"])
        for row, value in enumerate(values):
            inputs[row, : len(value)] = value
        lens = np.array([len(v) / longest for v in values], dtype="float32")
        names_in, names_out = spec["graph_inputs"], spec["graph_outputs"]
        feats, out_lens = self.sessions[spec["graph"]].run(
            [names_out["feats"], names_out["lens"]],
            {names_in["values"]: inputs, names_in["lens"]: lens},
        )
        return {head["feats"]: feats, head["lens"]: out_lens}

    def _result(self, mean, wav, text, windows):
        """The prediction, named as ``onnx_info.json``'s outputs say."""
        result = {}
        for output, values in mean.items():
            spec = self.info["outputs"][output]
            if "labels" in spec:
                labels = spec["labels"]
                result["label"] = labels[int(np.argmax(values))]
                result["probs"] = dict(zip(labels, map(float, values)))
                continue
            low, high = spec["rating_scale"]
            for name, value in zip(spec["names"], values):
                result[name] = float(value)
                result[f"{name}_rating"] = low + (high - low) * float(value)
        result["path"] = (
            "text-only"
            if wav is None
            else "audio-only"
            if text is None
            else "audio+text"
        )
        result["windows"] = windows
        return result


def softmax(logits):
    """Softmax over the last axis.

    Arguments
    ---------
    logits : numpy.ndarray

    Returns
    -------
    numpy.ndarray

    Example
    -------
    >>> softmax(np.array([[0.0, 0.0]])).tolist()
    [[0.5, 0.5]]
    """
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def verify_digests(folder, info):
    """Checks every file of ``folder`` against ``info["sha256"]``.

    Arguments
    ---------
    folder : pathlib.Path
        The ``onnx/`` folder.
    info : dict
        Its ``onnx_info.json``.

    Raises
    ------
    ValueError
        Naming a file that is missing, changed, or has no digest.
    """
    digests = info["sha256"]
    present = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != INFO
    }
    for key in sorted(present | set(digests)):
        path = folder / key
        if key not in digests:
            raise ValueError(f"{path}: no SHA-256 in {INFO}; not trusted")
        if key not in present:
            raise ValueError(f"{path}: missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digests[key]:
            raise ValueError(f"{path}: changed since the export")


def read_wav(path, sample_rate):
    """A mono float32 waveform, at the model's sample rate.

    Arguments
    ---------
    path : str or path-like
        An audio file soundfile reads.
    sample_rate : int
        The rate the model takes (this client does not resample).

    Returns
    -------
    numpy.ndarray
    """
    wav, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    if rate != sample_rate:
        raise ValueError(
            f"{path}: {rate} Hz; resample it to {sample_rate} Hz first"
        )
    return wav.mean(axis=1)


def main(argv=None):
    """``python docs/onnx_client.py <onnx folder> [wav] [--text T]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the onnx/ folder of a model")
    parser.add_argument("wav", nargs="?", help="audio file")
    parser.add_argument("--text", help="its transcript")
    parser.add_argument("--int8", action="store_true")
    args = parser.parse_args(argv)
    client = OnnxEmotionClient(args.folder, args.int8)
    wav = None if args.wav is None else read_wav(args.wav, client.sample_rate)
    print(json.dumps(client.predict(wav, args.text), indent=2))


if __name__ == "__main__":
    main()
