"""ONNX graphs of an exported model, checked against PyTorch.

``mtmm export --onnx`` calls :func:`export_onnx` on the model folder it
has just written: the model is loaded as the PyTorch recognizer loads it,
and its audio encoder, text encoder and head (refinement, fusion, heads)
are exported with ``torch.onnx.export`` (the ``torch.export``-based
exporter) with dynamic batch and time axes; see
:mod:`speechbrain_mtmm.inference.onnx_runtime` for the layout and why
three graphs. The graphs are run once by onnxruntime on inputs of another
batch size and length than the ones they were traced with, and their
class probabilities and dimensions must equal PyTorch's to
:data:`PARITY_TOLERANCE` (:func:`check_parity`). With ``int8``,
onnxruntime's dynamic quantization (int8 weights of MatMul/Gemm,
activations quantized on the fly) writes a second set of graphs.

``onnx_info.json`` (:func:`describe_onnx`) is written for a client that
reads only it, the graphs and the tokenizer files (onnxruntime, numpy and
a tokenizer; no speechbrain-mtmm): every graph's inputs and outputs with
their dtypes and dynamic axes, the input conventions (sample rate,
relative lengths, how the tokenizer is called), what the outputs mean
(class names and dimension names in column order, the rating scale), the
input that stands for a missing modality, long-audio windowing, and the
SHA-256 of every file such a client reads. ``docs/onnx_client.py`` is
such a client.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import logging
import warnings
from pathlib import Path

import torch
from speechbrain.utils.data_utils import batch_pad_right

try:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
except ImportError:  # the optional extra: pip install speechbrain-mtmm[onnx]
    onnx = quantize_dynamic = None

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.encoders import LIGHT_SOURCES, MODALITIES
from speechbrain_mtmm.inference.onnx_runtime import (
    GRAPHS,
    INFO_FORMAT,
    ONNX_FOLDER,
    ONNX_INFO,
    TOKENIZER_FOLDER,
    OnnxBackendError,
    OnnxSystem,
    graph_files,
    head_outputs,
    onnxruntime,
    tokenizer_files,
)
from speechbrain_mtmm.inference.recognizer import plain_hparams
from speechbrain_mtmm.run_folder import (
    HYPERPARAMS,
    RATING_SCALE,
    file_digest,
    trained_dimensions,
)

#: Largest difference allowed between PyTorch and ONNX (fp32) outputs
PARITY_TOLERANCE = 1e-4
# dynamic axes: batch, and each input's time axis
_DYNAMIC = {
    "audio_encoder": {
        "wav": {0: "batch", 1: "samples"},
        "wav_lens": {0: "batch"},
        "feats": {0: "batch", 1: "frames"},
        "lens": {0: "batch"},
    },
    "text_encoder": {
        "tokens": {0: "batch", 1: "tokens"},
        "token_lens": {0: "batch"},
        "feats": {0: "batch", 1: "frames"},
        "lens": {0: "batch"},
    },
    "head": {
        "audio_feats": {0: "batch", 1: "audio_frames"},
        "audio_lens": {0: "batch"},
        "text_feats": {0: "batch", 1: "text_frames"},
        "text_lens": {0: "batch"},
        "logits": {0: "batch"},
        "dims": {0: "batch"},
    },
}
PROBE_TEXTS = ("I can't believe it.", "Well, that went better than I hoped.")


class _Encoder(torch.nn.Module):
    """One modality's encoder and layer sum, as a graph."""

    def __init__(self, system, modality):
        super().__init__()
        self.system = system
        self.modality = modality

    def forward(self, inputs, lens):
        """The stacked layers' weighted sum and its exact lengths."""
        return self.system.encode(self.modality, inputs, lens)


class _Head(torch.nn.Module):
    """Refinement, fusion and heads, as a graph."""

    def __init__(self, system):
        super().__init__()
        self.system = system

    def forward(self, audio_feats, audio_lens, text_feats, text_lens):
        """Class logits and 0-1 dimensions from both modalities (those
        the model was trained for)."""
        out = self.system(audio_feats, audio_lens, text_feats, text_lens)
        return tuple(out[name] for name in head_outputs(self.system.config))


def probe_inputs(system, batch, seconds):
    """Inputs of every graph for a batch of ``batch`` utterances.

    Arguments
    ---------
    system : speechbrain_mtmm.system.MultimodalEmotionSystem
        The model.
    batch : int
        Utterances (of decreasing lengths).
    seconds : float
        Length of the longest waveform.

    Returns
    -------
    dict
        Graph name -> tuple of input tensors.
    """
    rate = system.config["sample_rate"]
    generator = torch.Generator().manual_seed(batch)
    sizes = [int(rate * seconds * (1 - 0.3 * i)) for i in range(batch)]
    wavs = [0.1 * torch.randn(n, generator=generator) for n in sizes]
    inputs = {}
    with torch.no_grad():
        audio = text = None
        if "audio" in system.config["modalities"]:
            inputs["audio_encoder"] = batch_pad_right(wavs)
            audio = system.encode("audio", *inputs["audio_encoder"])
        if "text" in system.config["modalities"]:
            texts = [
                " ".join(PROBE_TEXTS[: i % len(PROBE_TEXTS) + 1] * (i + 1))
                for i in range(batch)
            ]
            tokens = [system.text_encoder.tokenize(t) for t in texts]
            inputs["text_encoder"] = batch_pad_right(tokens)
            text = system.encode("text", *inputs["text_encoder"])
    audio = audio or system.masked("audio", batch)
    text = text or system.masked("text", batch)
    inputs["head"] = (*audio, *text)
    return inputs


def export_onnx(folder, system, int8=False):
    """Writes ``<folder>/onnx/`` for a loaded model.

    Arguments
    ---------
    folder : str or path-like
        The model folder (written by ``mtmm export``).
    system : speechbrain_mtmm.system.MultimodalEmotionSystem
        Its model, loaded on the CPU.
    int8 : bool
        Also write int8 graphs.

    Returns
    -------
    dict
        The ``onnx_info.json`` content: feature sizes, the differences
        from PyTorch (:func:`check_parity`), and SHA-256 digests.

    Raises
    ------
    OnnxBackendError
        onnxruntime missing, or outputs that differ from PyTorch.
    """
    if onnxruntime is None or quantize_dynamic is None or onnx is None:
        raise OnnxBackendError(
            "--onnx needs onnx, onnxscript and onnxruntime: pip install "
            "speechbrain-mtmm[onnx]"
        )
    folder = Path(folder)
    out = folder / ONNX_FOLDER
    out.mkdir(parents=True, exist_ok=True)
    system = system.eval()
    config = system.config
    files = graph_files(folder, config)
    modules = {
        "audio_encoder": _Encoder(system, "audio"),
        "text_encoder": _Encoder(system, "text"),
        "head": _Head(system),
    }
    traced = probe_inputs(system, batch=2, seconds=1.0)
    text_encoder = getattr(system, "text_encoder", None)
    narrow = getattr(text_encoder, "narrow_positions", None)
    if narrow is not None:  # a graph takes any length: the whole table
        text_encoder.narrow_positions = False
    try:
        for name, path in files.items():
            _export_graph(modules[name], traced[name], name, path, config)
    finally:
        if narrow is not None:
            text_encoder.narrow_positions = narrow
    if "text" in config["modalities"]:
        if str(config["text"]["source"]) != LIGHT_SOURCES["text"]:
            system.text_encoder.tokenizer.save_pretrained(
                str(out / TOKENIZER_FOLDER)
            )
    info = describe_onnx(folder, system)
    write_json(out / ONNX_INFO, _digests(info, folder, config, False))
    info["max_abs_difference"] = check_parity(folder, system)
    if int8:
        quantize(folder, config)
        info = _digests(info, folder, config, True)
        for name, path in graph_files(folder, config, True).items():
            info["graphs"][name]["int8_file"] = _relative(folder, path)
    info = _digests(info, folder, config, False)
    write_json(out / ONNX_INFO, info)
    return info


def describe_onnx(folder, system):
    """What a client needs to run the graphs of ``<folder>/onnx/``.

    Arguments
    ---------
    folder : pathlib.Path
        The model folder, its fp32 graphs written (its
        ``hyperparams.yaml``, when there, gives the long-audio settings).
    system : speechbrain_mtmm.system.MultimodalEmotionSystem
        The model the graphs were exported from.

    Returns
    -------
    dict
        The ``onnx_info.json`` content but the digests and the parity
        check: ``format``, ``graphs``, ``modalities``,
        ``missing_modality``, ``outputs``, ``long_audio``,
        ``feature_sizes``, ``torch``, ``onnxruntime``.
    """
    folder = Path(folder)
    config = system.config
    graphs = {
        name: {"file": _relative(folder, path), **_graph_io(path)}
        for name, path in graph_files(folder, config).items()
    }
    sizes = {m: int(system.encoder(m).output_size) for m in MODALITIES}
    head = GRAPHS["head"][0]
    modalities = {}
    for index, modality in enumerate(MODALITIES):
        name = f"{modality}_encoder"
        spec = {
            "used": name in graphs,
            "feature_size": sizes[modality],
            "head_inputs": dict(zip(("feats", "lens"), head[2 * index :])),
        }
        if spec["used"]:
            spec["graph"] = name
            spec["graph_inputs"] = dict(
                zip(("values", "lens"), GRAPHS[name][0])
            )
            spec["graph_outputs"] = dict(
                zip(("feats", "lens"), GRAPHS[name][1])
            )
            spec.update(_input_conventions(modality, system))
        modalities[modality] = spec
    return {
        "format": INFO_FORMAT,
        "pipeline": "Each used modality present in an input: run its "
        "encoder graph on graph_inputs and feed graph_outputs to the "
        "head's head_inputs; a modality that is missing (or not used) "
        "gets the missing_modality tensors instead; the head's logits "
        "and dims are described under outputs.",
        "graphs": graphs,
        "modalities": modalities,
        "missing_modality": {
            "rule": "what Random Modality Masking fed the model in "
            "training: one all-zero frame of the modality's feature_size "
            "per utterance, with relative length 1",
            "feats": {
                "dtype": "float32",
                "shape": ["batch", 1, "feature_size"],
                "value": 0.0,
            },
            "lens": {"dtype": "float32", "shape": ["batch"], "value": 1.0},
        },
        "outputs": _outputs(config),
        "long_audio": _long_audio(folder, config),
        "feature_sizes": sizes,
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "sha256": {},
    }


def _relative(folder, path):
    """A path inside ``<folder>/onnx/``, as onnx_info.json names it."""
    return Path(path).relative_to(Path(folder) / ONNX_FOLDER).as_posix()


def _graph_io(path):
    """A graph's inputs and outputs: name, dtype, shape (a dynamic axis
    by its name), as the graph itself declares them."""
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value):
        """One input or output."""
        tensor = value.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)
        return {"name": value.name, "dtype": dtype.name, "shape": shape}

    return {
        "inputs": [describe(v) for v in graph.input],
        "outputs": [describe(v) for v in graph.output],
    }


def _input_conventions(modality, system):
    """How one modality's encoder graph is fed."""
    config = system.config
    if modality == "audio":
        return {
            "sample_rate": int(config["sample_rate"]),
            "channels": 1,
            "dtype": "float32",
            "range": [-1.0, 1.0],
            "preprocessing": "mix the channels down to mono (their mean) "
            "and resample to sample_rate; nothing else: the graph "
            "standardises the waveform when its encoder does, and "
            "computes Whisper's log-mel (30 s windows) for a Whisper "
            "encoder",
            "batch": "pad each waveform at the end with zeros to the "
            "longest; lens[i] = samples of i / padded samples, in (0, 1]",
        }
    encoder = system.text_encoder
    batch = (
        "pad each id sequence at the end with pad_id to the longest; "
        "lens[i] = ids of i / padded ids, in (0, 1]"
    )
    preprocessing = (
        "strip the transcript's surrounding whitespace; an empty "
        "transcript is a missing one (see missing_modality)"
    )
    if str(config["text"]["source"]) == LIGHT_SOURCES["text"]:
        hashing = encoder.tokenizer
        tokenizer = {
            "type": "hashing",
            "lowercase": True,
            "pattern": hashing._token_pattern.pattern,
            "pattern_flavour": "Python re (Unicode word characters)",
            "hash": "zlib.crc32 of the token's UTF-8 bytes",
            "id": "first_id + crc32 % (vocab_size - first_id)",
            "first_id": hashing._first,
            "vocab_size": hashing.vocab_size,
            "bos_id": hashing.bos_id,
            "max_length": hashing.max_length,
            "truncation": "keep the first max_length ids (bos_id included)",
            "pad_id": hashing.pad_id,
        }
    else:
        tokenizer = {
            "type": "transformers",
            "folder": TOKENIZER_FOLDER,
            "load": "transformers.AutoTokenizer.from_pretrained(folder)",
            "call": {
                "add_special_tokens": True,
                "truncation": True,
                "max_length": encoder.tokens.max_length,
                "padding": False,
            },
            "ids": "input_ids",
            "max_length": encoder.tokens.max_length,
            "pad_id": encoder.pad_id,
        }
    return {
        "dtype": "int64",
        "tokenizer": tokenizer,
        "preprocessing": preprocessing,
        "batch": batch,
    }


def _outputs(config):
    """What the head's outputs mean (those the model was trained for)."""
    logits, dims = GRAPHS["head"][1]
    low, high = config.get("rating_scale", RATING_SCALE)
    outputs = {
        logits: {
            "labels": list(config["labels"]),
            "meaning": "one unnormalised score per class, the columns in "
            "the order of labels",
            "probabilities": "softmax over the last axis",
        },
        dims: {
            "names": trained_dimensions(config),
            "meaning": "one column per dimension, in the order of names, "
            "on 0-1",
            "range": [0.0, 1.0],
            "rating_scale": [float(low), float(high)],
            "to_rating": "rating = low + (high - low) * value, with "
            "[low, high] = rating_scale (the corpus' annotation scale)",
        },
    }
    return {name: outputs[name] for name in head_outputs(config)}


def _long_audio(folder, config):
    """The recognizer's windowing of long audio, as the export sets it."""
    hparams = {}
    if (Path(folder) / HYPERPARAMS).is_file():
        hparams = plain_hparams(folder)
    seconds = hparams.get("max_audio_seconds", config.get("max_audio_seconds"))
    return {
        "max_audio_seconds": seconds,
        "mode": hparams.get("long_audio", "chunk"),
        "chunk": "audio longer than max_audio_seconds * sample_rate "
        "samples (max) is cut into k = ceil(n / max) consecutive windows "
        "of ceil(n / k) samples (the last one shorter); every window is "
        "paired with the whole transcript; the class probabilities "
        "(after the softmax) and dims are averaged over the windows, "
        "weighted by their number of samples",
        "truncate": "only the first max_audio_seconds are used",
        "null": "max_audio_seconds null: no limit",
    }


def _export_graph(module, inputs, name, path, config):
    names_in, names_out = GRAPHS[name]
    if name == "head":
        names_out = head_outputs(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            module,
            tuple(inputs),
            str(path),
            input_names=list(names_in),
            output_names=list(names_out),
            dynamic_axes={
                key: axes
                for key, axes in _DYNAMIC[name].items()
                if key in (*names_in, *names_out)
            },
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _digests(info, folder, config, int8):
    """SHA-256 of each graph, of its external weights (a graph over
    the exporter's size limit keeps them in ``<graph>.onnx.data``) and of
    every tokenizer file."""
    files = list(tokenizer_files(folder))
    for path in graph_files(folder, config, int8).values():
        files += [path, path.with_name(path.name + ".data")]
    for file in files:
        if file.is_file():
            info["sha256"][_relative(folder, file)] = file_digest(file)
    return info


def check_parity(folder, system):
    """How far the fp32 graphs are from PyTorch, end to end.

    Run on 3 utterances of other lengths than those of the export, so a
    shape frozen into a graph would show: the class probabilities and
    dimensions of the three graphs chained (as the ONNX backend runs them)
    against PyTorch's, which must agree to :data:`PARITY_TOLERANCE`; and,
    for information, each graph's largest difference relative to the
    largest magnitude of its output.

    Arguments
    ---------
    folder : pathlib.Path
        The model folder.
    system : speechbrain_mtmm.system.MultimodalEmotionSystem
        The PyTorch model.

    Returns
    -------
    dict
        ``end_to_end`` (absolute, probabilities and dimensions) and one
        relative difference per graph.

    Raises
    ------
    OnnxBackendError
        When the end-to-end difference exceeds :data:`PARITY_TOLERANCE`.
    """
    onnx = OnnxSystem(folder, system.config)
    inputs = probe_inputs(system, batch=3, seconds=1.7)
    differences = {}

    def relative(expected, got):
        """The largest difference, relative to the largest value."""
        scale = max(float(expected.abs().max()), 1e-6)
        return float((expected.float() - got.float()).abs().max()) / scale

    chained = {}
    with torch.no_grad():
        for name, args in inputs.items():
            if name == "head":
                continue
            modality = name[: -len("_encoder")]
            expected = system.encode(modality, *args)
            got = onnx.encode(modality, *args)
            differences[name] = relative(expected[0], got[0])
            chained[modality] = got
        head = inputs["head"]
        expected = system(*head)
        names = head_outputs(system.config)
        differences["head"] = max(
            relative(expected[k], onnx(*head)[k]) for k in names
        )
        audio = chained.get("audio", head[:2])
        text = chained.get("text", head[2:])
        got = onnx(*audio, *text)
    pairs = [
        (expected[k].softmax(-1), got[k].softmax(-1))
        if k == "logits"
        else (expected[k], got[k])
        for k in names
    ]
    differences["end_to_end"] = max(
        float((a.float() - b.float()).abs().max()) for a, b in pairs
    )
    if differences["end_to_end"] > PARITY_TOLERANCE:
        raise OnnxBackendError(
            f"{folder / ONNX_FOLDER}: the graphs' probabilities or "
            "dimensions differ from PyTorch's by "
            f"{differences['end_to_end']:.2e} (> {PARITY_TOLERANCE})"
        )
    return differences


def quantize(folder, config):
    """int8 graphs by onnxruntime's dynamic quantization.

    Arguments
    ---------
    folder : pathlib.Path
        The model folder.
    config : dict
        Its ``model_config``.
    """
    fp32 = graph_files(folder, config)
    for name, path in graph_files(folder, config, int8=True).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        quantize_dynamic(
            str(fp32[name]), str(path), weight_type=QuantType.QInt8
        )
