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
    from onnxruntime.quantization import QuantType, quantize_dynamic
except ImportError:  # the optional extra: pip install speechbrain-mtmm[onnx]
    quantize_dynamic = None

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.encoders import LIGHT_SOURCES
from speechbrain_mtmm.inference.onnx_runtime import (
    GRAPHS,
    ONNX_FOLDER,
    ONNX_INFO,
    TOKENIZER_FOLDER,
    OnnxBackendError,
    OnnxSystem,
    graph_files,
    onnxruntime,
)
from speechbrain_mtmm.run_folder import file_digest

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
        return self.system.encode(self.modality, inputs, lens)


class _Head(torch.nn.Module):
    """Refinement, fusion and heads, as a graph."""

    def __init__(self, system):
        super().__init__()
        self.system = system

    def forward(self, audio_feats, audio_lens, text_feats, text_lens):
        out = self.system(audio_feats, audio_lens, text_feats, text_lens)
        return out["logits"], out["dims"]


def probe_inputs(system, batch, seconds):
    """Inputs of every graph for a batch of ``batch`` utterances.

    Arguments
    ---------
    system : speechbrain_mtmm.model.MultimodalEmotionSystem
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
    system : speechbrain_mtmm.model.MultimodalEmotionSystem
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
    if onnxruntime is None or quantize_dynamic is None:
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
            _export_graph(modules[name], traced[name], name, path)
    finally:
        if narrow is not None:
            text_encoder.narrow_positions = narrow
    if "text" in config["modalities"]:
        if str(config["text"]["source"]) != LIGHT_SOURCES["text"]:
            system.text_encoder.tokenizer.save_pretrained(
                str(out / TOKENIZER_FOLDER)
            )
    info = {
        "feature_sizes": {
            m: int(system.encoder(m).output_size) for m in ("audio", "text")
        },
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "inputs": {name: list(GRAPHS[name][0]) for name in files},
        "sha256": {},
    }
    write_json(out / ONNX_INFO, _digests(info, folder, config, False))
    info["max_abs_difference"] = check_parity(folder, system)
    if int8:
        quantize(folder, config)
        info = _digests(info, folder, config, True)
    info = _digests(info, folder, config, False)
    write_json(out / ONNX_INFO, info)
    return info


def _export_graph(module, inputs, name, path):
    names_in, names_out = GRAPHS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        torch.onnx.export(
            module,
            tuple(inputs),
            str(path),
            input_names=list(names_in),
            output_names=list(names_out),
            dynamic_axes=_DYNAMIC[name],
            dynamo=True,
            external_data=False,
            verbose=False,
        )


def _digests(info, folder, config, int8):
    """SHA-256 of each graph, and of its external weights (a graph over
    the exporter's size limit keeps them in ``<graph>.onnx.data``)."""
    for path in graph_files(folder, config, int8).values():
        for file in (path, path.with_name(path.name + ".data")):
            if file.is_file():
                key = str(file.relative_to(Path(folder) / ONNX_FOLDER))
                info["sha256"][key] = file_digest(file)
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
    system : speechbrain_mtmm.model.MultimodalEmotionSystem
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
        differences["head"] = max(
            relative(expected[k], onnx(*head)[k]) for k in ("logits", "dims")
        )
        audio = chained.get("audio", head[:2])
        text = chained.get("text", head[2:])
        got = onnx(*audio, *text)
    pairs = [
        (expected["logits"].softmax(-1), got["logits"].softmax(-1)),
        (expected["dims"], got["dims"]),
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
