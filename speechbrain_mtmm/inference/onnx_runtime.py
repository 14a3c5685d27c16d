"""An exported model run by onnxruntime instead of PyTorch modules.

``mtmm export --onnx`` (:mod:`speechbrain_mtmm.sharing.onnx_export`) adds
to a model folder::

    <model>/onnx/
        audio_encoder.onnx   waveform, relative length -> features, lengths
        text_encoder.onnx    token ids, relative length -> features, lengths
                             (+ .onnx.data: weights of a graph too large
                             for one file, DeBERTaV3-large's)
        head.onnx            both features -> class logits, dimensions (0-1)
        int8/*.onnx          the same, weights quantized to int8 (optional)
        tokenizer/           the text encoder's tokenizer files
        onnx_info.json       how to run the graphs without this package
                             (inputs, outputs, conventions, missing
                             modality, long audio) and the SHA-256 of
                             every other file here

The model is three graphs rather than one so that a missing modality is
fed exactly as in PyTorch and in training (one zero frame of the
encoder's width, ``masked_modality_features``) without a second copy of
the weights. :class:`OnnxSystem` offers the part
of :class:`~speechbrain_mtmm.system.MultimodalEmotionSystem` that
:class:`~speechbrain_mtmm.inference.recognizer.MultimodalEmotionRecognizer`
uses (tokenize, encode, masked, forward), so that paths, long-audio
windows, warnings and results are the same code for both backends.

Loading the ONNX backend parses ``hyperparams.yaml`` as plain YAML (no
HyperPyYAML object is built, so the file cannot run code) and checks
every file it reads (the graphs, their external weights, the tokenizer
files) against the SHA-256 digests of ``onnx_info.json``. The audio is
still read and resampled with torchaudio, and the tokenizer is a
transformers one: the package is needed, a PyTorch model is not built.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from pathlib import Path

import numpy as np
import torch

try:
    import onnxruntime
except ImportError:  # the optional extra: pip install speechbrain-mtmm[onnx]
    onnxruntime = None
from transformers import AutoTokenizer

from speechbrain_mtmm.encoders import (
    LIGHT_SIZE,
    LIGHT_SOURCES,
    MAX_TOKENS,
    build_encoder,
)
from speechbrain_mtmm.encoders.huggingface import HFTokenizer
from speechbrain_mtmm.nnet.masking import masked_modality_features
from speechbrain_mtmm.run_folder import (
    check_digests,
    classes_trained,
    read_json,
    trained_dimensions,
)

ONNX_FOLDER = "onnx"
ONNX_INFO = "onnx_info.json"
#: What onnx_info.json describes (version 2: the conventions a client
#: needs, and digests of the tokenizer files too)
INFO_FORMAT = {"name": "speechbrain-mtmm-onnx", "version": 2}
INT8_FOLDER = "int8"
TOKENIZER_FOLDER = "tokenizer"
#: graph name -> (input names, output names)
GRAPHS = {
    "audio_encoder": (("wav", "wav_lens"), ("feats", "lens")),
    "text_encoder": (("tokens", "token_lens"), ("feats", "lens")),
    "head": (
        ("audio_feats", "audio_lens", "text_feats", "text_lens"),
        ("logits", "dims"),
    ),
}


def head_outputs(config):
    """The head graph's outputs: those of :data:`GRAPHS` the model was
    trained for (``logits`` if the classes were, ``dims`` if any
    dimension was).

    Arguments
    ---------
    config : dict
        The model configuration.

    Returns
    -------
    tuple of str

    Example
    -------
    >>> head_outputs({"n_dims": 2, "loss_weights": {"classes": 1.0}})
    ('logits',)
    """
    trained = {
        "logits": classes_trained(config),
        "dims": bool(trained_dimensions(config)),
    }
    return tuple(name for name in GRAPHS["head"][1] if trained[name])


class OnnxBackendError(ValueError):
    """An ONNX model folder that cannot be used; the message names it."""


def graph_files(folder, config, int8=False):
    """The graph files a model needs, by graph name.

    Arguments
    ---------
    folder : str or path-like
        The model folder.
    config : dict
        Its ``model_config`` (which modalities it reads).
    int8 : bool
        The quantized graphs.

    Returns
    -------
    dict
        Graph name -> path.

    Example
    -------
    >>> files = graph_files("m", {"modalities": ["audio"]})
    >>> {k: str(v) for k, v in files.items()}
    {'audio_encoder': 'm/onnx/audio_encoder.onnx', 'head': 'm/onnx/head.onnx'}
    """
    base = Path(folder) / ONNX_FOLDER
    if int8:
        base = base / INT8_FOLDER
    names = [f"{m}_encoder" for m in ("audio", "text")]
    names = [n for n in names if n[: -len("_encoder")] in config["modalities"]]
    return {name: base / f"{name}.onnx" for name in [*names, "head"]}


def tokenizer_files(folder):
    """The files of a model folder's ONNX tokenizer (none without one).

    Arguments
    ---------
    folder : str or path-like
        The model folder.

    Returns
    -------
    list of pathlib.Path
        Sorted.

    Example
    -------
    >>> tokenizer_files(getfixture("tmp_path"))
    []
    """
    tokenizer = Path(folder) / ONNX_FOLDER / TOKENIZER_FOLDER
    if not tokenizer.is_dir():
        return []
    return sorted(path for path in tokenizer.rglob("*") if path.is_file())


def verify_onnx_files(folder, info, files, hashed=True):
    """Checks files of ``<folder>/onnx/`` against ``onnx_info.json``.

    Arguments
    ---------
    folder : pathlib.Path
        The model folder.
    info : dict
        Its ``onnx_info.json``.
    files : list of pathlib.Path
        The files that will be read.
    hashed : bool
        Compare their bytes with the digests (False: the caller did; each
        file must still have one).

    Raises
    ------
    OnnxBackendError
        Naming the first file with no digest, or whose bytes differ.

    Example
    -------
    >>> from speechbrain_mtmm.run_folder import file_digest
    >>> folder = getfixture("tmp_path")
    >>> (folder / "onnx").mkdir()
    >>> graph = folder / "onnx" / "head.onnx"
    >>> _ = graph.write_bytes(b"graph")
    >>> info = {"sha256": {"head.onnx": file_digest(graph)}}
    >>> verify_onnx_files(folder, info, [graph])
    >>> _ = graph.write_bytes(b"other")
    >>> try:
    ...     verify_onnx_files(folder, info, [graph])
    ... except OnnxBackendError as error:
    ...     print(str(error).startswith(f"{graph}: missing or changed"))
    True
    """
    base = Path(folder) / ONNX_FOLDER
    names = [Path(file).relative_to(base).as_posix() for file in files]
    wrong = check_digests(
        base, names, info.get("sha256", {}), base / ONNX_INFO, hashed
    )
    if wrong:
        raise OnnxBackendError(
            f"{wrong}; export the model again with --onnx (a file added "
            "since, or an export from before tokenizer files were covered, "
            "has no digest)"
        )


def _describe(value):
    """A JSON value's kind, for messages."""
    names = {dict: "mapping", list: "list", str: "str", bool: "bool"}
    return f"a {names.get(type(value), type(value).__name__)}"


def read_onnx_info(path):
    """An ``onnx_info.json``, its schema checked: what the backend reads
    (``format``, ``feature_sizes``, ``sha256``) must be there, of the
    right kind.

    Arguments
    ---------
    path : str or path-like
        The file.

    Returns
    -------
    dict

    Raises
    ------
    OnnxBackendError
        One line naming the file, the key and what is expected.

    Example
    -------
    >>> import json
    >>> path = getfixture("tmp_path") / "onnx_info.json"
    >>> info = {"format": INFO_FORMAT, "feature_sizes": {"audio": 8,
    ...         "text": 8}, "sha256": {"head.onnx": "ab"}}
    >>> _ = path.write_text(json.dumps(info))
    >>> read_onnx_info(path)["feature_sizes"]
    {'audio': 8, 'text': 8}
    >>> _ = path.write_text(json.dumps({**info, "feature_sizes": [8, 8]}))
    >>> read_onnx_info(path)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.onnx_runtime.OnnxBackendError: \
.../onnx_info.json: feature_sizes: a list, expected a mapping of modality \
-> positive integer; export the model again with --onnx
    """
    redo = "export the model again with --onnx"
    try:
        info = read_json(path)
    except (ValueError, UnicodeDecodeError):
        raise OnnxBackendError(f"{path}: not valid JSON; {redo}") from None

    def wrong(key, value, expected):
        """The error for one key."""
        found = "missing" if value is _MISSING else _describe(value)
        return OnnxBackendError(
            f"{path}: {key}: {found}, expected {expected}; {redo}"
        )

    if not isinstance(info, dict):
        raise wrong("(top level)", info, "a mapping")
    fmt = info.get("format", _MISSING)
    expected = f"{{name: {INFO_FORMAT['name']}, version: <integer>}}"
    if not isinstance(fmt, dict):
        raise wrong("format", fmt, expected)
    if fmt.get("name") != INFO_FORMAT["name"]:
        raise wrong("format.name", fmt.get("name", _MISSING), expected)
    version = fmt.get("version", _MISSING)
    if not isinstance(version, int) or isinstance(version, bool):
        raise wrong("format.version", version, "an integer")
    if version > INFO_FORMAT["version"]:
        raise OnnxBackendError(
            f"{path}: format.version {version} is newer than this "
            f"speechbrain-mtmm reads ({INFO_FORMAT['version']}); upgrade it"
        )
    sizes = info.get("feature_sizes", _MISSING)
    if not isinstance(sizes, dict):
        raise wrong(
            "feature_sizes", sizes, "a mapping of modality -> positive integer"
        )
    for modality in ("audio", "text"):
        size = sizes.get(modality, _MISSING)
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise wrong(f"feature_sizes.{modality}", size, "a positive integer")
    digests = info.get("sha256", _MISSING)
    if not isinstance(digests, dict):
        raise wrong("sha256", digests, "a mapping of file -> SHA-256")
    for name, digest in digests.items():
        if not isinstance(digest, str):
            raise wrong(f"sha256.{name}", digest, "a SHA-256 (64 hex digits)")
    return info


_MISSING = object()


class OnnxSystem(torch.nn.Module):
    """The three graphs of an exported model behind the system interface.

    Arguments
    ---------
    folder : str or path-like
        The model folder (with ``onnx/``).
    config : dict
        Its ``model_config``.
    int8 : bool
        Run the int8 graphs.
    threads : int, optional
        onnxruntime intra-op threads (None: its default).
    checked : bool
        The caller has checked the graphs against the export's digests
        (``from_onnx`` does): they are not hashed a second time.

    Raises
    ------
    OnnxBackendError
        onnxruntime missing, no ONNX export, or a graph that changed.
    """

    def __init__(self, folder, config, int8=False, threads=None, checked=False):
        super().__init__()
        if onnxruntime is None:
            raise OnnxBackendError(
                "the ONNX backend needs onnxruntime: pip install "
                "speechbrain-mtmm[onnx]"
            )
        folder = Path(folder)
        info_path = folder / ONNX_FOLDER / ONNX_INFO
        if not info_path.is_file():
            raise OnnxBackendError(
                f"{info_path}: missing; export the model with --onnx"
                + (" --int8" if int8 else "")
            )
        info = read_onnx_info(info_path)
        self.config = config
        self.labels = list(config["labels"])
        self.n_dims = int(config["n_dims"])
        self.sizes = info["feature_sizes"]
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        graphs = graph_files(folder, config, int8)
        files = []
        for path in graphs.values():
            key = path.relative_to(folder / ONNX_FOLDER).as_posix()
            if key not in info["sha256"] or not path.is_file():
                raise OnnxBackendError(
                    f"{path}: missing; export the model with --onnx"
                    + (" --int8" if int8 else "")
                )
            files.append(path)
            data = path.with_name(path.name + ".data")  # external weights
            if f"{key}.data" in info["sha256"] or data.is_file():
                files.append(data)
        if "text" in config["modalities"]:
            files += tokenizer_files(folder)
        for file in files:
            if not file.is_file():
                raise OnnxBackendError(
                    f"{file}: missing; export the model again with --onnx"
                )
        # with checked, the caller compared the bytes with the export's
        # digests; a file with none (added since) is refused either way
        verify_onnx_files(folder, info, files, hashed=not checked)
        self.sessions = {
            name: onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"]
            )
            for name, path in graphs.items()
        }
        if "text" in config["modalities"]:
            self.text_encoder = _tokenizer(folder, config["text"])

    def masked(self, modality, batch_size, device=None, dtype=None):
        """One zero frame per utterance, as the PyTorch system's.

        Arguments
        ---------
        modality : str
            ``"audio"`` or ``"text"``.
        batch_size : int
            Utterances.
        device, dtype : optional
            Of the features.

        Returns
        -------
        feats, lens : torch.Tensor
        """
        size = self.sizes[modality]
        return masked_modality_features(batch_size, size, device, dtype)

    def encode(self, modality, inputs, lens):
        """Runs one encoder graph.

        Arguments
        ---------
        modality : str
            ``"audio"`` or ``"text"``.
        inputs : torch.Tensor
            Padded waveforms or token ids.
        lens : torch.Tensor
            Relative lengths.

        Returns
        -------
        feats, lens : torch.Tensor
        """
        name = f"{modality}_encoder"
        inputs_np = inputs.cpu().numpy()
        if modality == "audio":
            inputs_np = inputs_np.astype(np.float32)
        feeds = dict(
            zip(
                GRAPHS[name][0],
                (inputs_np, lens.cpu().numpy().astype(np.float32)),
            )
        )
        feats, out_lens = self.sessions[name].run(None, feeds)
        return torch.from_numpy(feats), torch.from_numpy(out_lens)

    def forward(self, audio_feats, audio_lens, text_feats, text_lens):
        """Runs the head graph: refinement, fusion, heads.

        Arguments
        ---------
        audio_feats, audio_lens, text_feats, text_lens : torch.Tensor
            As :meth:`encode` or :meth:`masked` return them.

        Returns
        -------
        dict
            ``logits`` and ``dims`` (0-1), those the model was trained
            for (:func:`head_outputs`).
        """
        values = (audio_feats, audio_lens, text_feats, text_lens)
        feeds = {
            name: value.detach().cpu().float().numpy()
            for name, value in zip(GRAPHS["head"][0], values)
        }
        names = head_outputs(self.config)
        outputs = self.sessions["head"].run(list(names), feeds)
        return {n: torch.from_numpy(v) for n, v in zip(names, outputs)}


def _tokenizer(folder, section):
    """The text side's tokenizer: saved HF files, or a light encoder."""
    source = str(section["source"])
    if source == LIGHT_SOURCES["text"]:
        return build_encoder(
            "text",
            source,
            light_size=section.get("light_size", LIGHT_SIZE),
            max_length=section.get("max_length", MAX_TOKENS),
        )
    path = Path(folder) / ONNX_FOLDER / TOKENIZER_FOLDER
    if not path.is_dir():
        raise OnnxBackendError(f"{path}: missing; export with --onnx again")
    return HFTokenizer(
        AutoTokenizer.from_pretrained(str(path)),
        section.get("max_length", MAX_TOKENS),
    )
