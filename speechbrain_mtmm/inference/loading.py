"""Fetching and checking an exported model: a folder, a savedir, a hub id.

An export (``mtmm export``, :mod:`speechbrain_mtmm.sharing.export`) loads
the way SpeechBrain's hosted models load: from a local folder, into a
``savedir`` elsewhere, or by HF hub id, with
``MultimodalEmotionRecognizer.from_hparams``, SpeechBrain's
``foreign_class`` (through the folder's ``custom_interface.py``) or the
generic ``Pretrained.from_hparams``. The files are fetched with
SpeechBrain's own :func:`speechbrain.utils.fetching.fetch` (local folders,
savedir with symlink or copy strategies, hub ids through huggingface_hub);
this module adds what it lacks for a model whose modules need files to be
built, and nothing else:

* :class:`ExportedSystem`: the ``system`` of an export's
  ``hyperparams.yaml``. HyperPyYAML builds objects before SpeechBrain's
  ``Pretrainer`` fetches any file, and the encoders of an export are
  built from files inside it (``encoders/audio/config.json``, the
  tokenizer): so the YAML only records the configuration, and the system
  is built in place once its files are where they were fetched to. The
  same object is then a complete
  :class:`~speechbrain_mtmm.system.MultimodalEmotionSystem` (no folder has
  to be written into the YAML: no ``!PLACEHOLDER``).
* :class:`ExportPretrainer`: a SpeechBrain ``Pretrainer`` whose
  ``collect_files`` fetches every file of the export that loading reads
  (the list is ``export_info.json``'s digests), with their relative
  paths, into the same folder (``savedir``, the local folder, or the hub
  cache snapshot), checks each against its SHA-256, then builds the
  system there and loads ``system.ckpt`` strictly.
* :func:`fetch_file`, :func:`fetch_export`, :func:`verify_digests`:
  one-line errors naming the file or the source and what to do, instead
  of a dangling symlink or a stack trace from huggingface_hub.
* :func:`check_trusted`: the tags of a ``hyperparams.yaml`` (every tag,
  on keys too, ``!!python/...`` and ``%TAG`` shorthands included) must be
  the ones ``mtmm export`` writes, and the model must use built-in blocks,
  unless the caller passes ``trust_remote_code=True`` (as in transformers).

An export is one signed unit: ``export_info.json`` lists the SHA-256 of
every other file and of its own content (``self_sha256``); loading refuses,
in one line naming the file, a missing ``export_info.json``, one without
its digests or changed since, and any file it reads (``hyperparams.yaml``,
``system.ckpt``, ``labels.txt``, the encoder and tokenizer files, the ONNX
graphs and ``onnx_info.json``) that is missing, changed or not listed;
nothing is guessed. ``labels.txt`` must also name the classes of
``model_config`` in their order. Only ``README.md``, the model card, is
read by no loader and may be edited (a hub card often is, in the browser).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import os
from pathlib import Path, PurePosixPath

import huggingface_hub
import ruamel.yaml
import ruamel.yaml.constructor
import ruamel.yaml.nodes
import torch
from speechbrain.utils.fetching import (
    FetchConfig,
    FetchFrom,
    LocalStrategy,
    fetch,
    guess_source,
)
from speechbrain.utils.parameter_transfer import Pretrainer

from speechbrain_mtmm.inference.model_source import HUB_ID, ExportLoadError
from speechbrain_mtmm.nnet.builders import is_builtin
from speechbrain_mtmm.plain_yaml import read_plain_yaml
from speechbrain_mtmm.run_folder import (
    EXPORT_INFO,
    HYPERPARAMS,
    SELF_DIGEST,
    check_digests,
    json_digest,
    read_json,
)
from speechbrain_mtmm.system import (
    MultimodalEmotionSystem,
    check_config,
    load_weights,
)

SYSTEM_FILE = "system.ckpt"
INTERFACE_FILE = "custom_interface.py"
LABELS_FILE = "labels.txt"
# Covered by the digests, neither read nor checked when loading
DOC_FILES = ("README.md",)
ONNX_PREFIX = "onnx/"
INT8_PREFIX = "onnx/int8/"
# Folders read whole (transformers reads whatever files are there): a file
# in them that the digests do not list is refused
READ_WHOLE = ("encoders/", "onnx/tokenizer/")
# The tags a YAML parser gives plain values; any other is refused
CORE_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}"
    for name in ("str", "int", "float", "bool", "null", "map", "seq")
)
RESIGN = (
    "export the model again (or, only if you trust the folder as it is, "
    "sign it again with speechbrain_mtmm.sharing.export.record_digests)"
)
# Keys of model_config naming a block class; a dotted value is an import
# path, i.e. code from outside the package
#: model_config key -> the kind of block it names (nnet.builders)
CLASS_KEYS = {
    "fusion_type": "fusion",
    "refinement_type": "refinement",
    "heads_type": "heads",
}

# (key path, tag, value) of every tagged node of an export's
# hyperparams.yaml (presets/inference.yaml with model_config filled in)
EXPORT_TAGS = (
    (("max_audio_seconds",), "!ref", "<model_config[max_audio_seconds]>"),
    (("system",), "!new:speechbrain_mtmm.inference.loading.ExportedSystem", ""),
    (("system", "config"), "!ref", "<model_config>"),
    (("modules", "system"), "!ref", "<system>"),
    (
        ("pretrainer",),
        "!new:speechbrain_mtmm.inference.loading.ExportPretrainer",
        "",
    ),
    (("pretrainer", "system"), "!ref", "<system>"),
)
# The same for exports made before custom_interface.py: their folder is a
# placeholder that from_hparams fills in (local folders only)
LEGACY_TAGS = (
    (("model_folder",), "!PLACEHOLDER", ""),
    (("max_audio_seconds",), "!ref", "<model_config[max_audio_seconds]>"),
    (("system",), "!new:speechbrain_mtmm.MultimodalEmotionSystem", ""),
    (("system", "config"), "!ref", "<model_config>"),
    (("system", "root"), "!ref", "<model_folder>"),
    (("modules", "system"), "!ref", "<system>"),
    (
        ("pretrainer",),
        "!new:speechbrain.utils.parameter_transfer.Pretrainer",
        "",
    ),
    (("pretrainer", "loadables", "system"), "!ref", "<system>"),
    (
        ("pretrainer", "custom_hooks", "system"),
        "!name:speechbrain_mtmm.inference.recognizer.load_state_dict_strict",
        "",
    ),
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
        A state-dict file (``<name>.ckpt``), read with
        ``weights_only=True``.

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
    RuntimeError: ...linear.ckpt: the weights do not fit the model: ...size...
    """
    load_weights(module, path)


def fetch_file(
    source,
    name,
    savedir=None,
    local_strategy=LocalStrategy.SYMLINK,
    fetch_config=None,
):
    """One file of an export, fetched with SpeechBrain's ``fetch``.

    Unlike a bare ``fetch``, a missing local file is an error (not a
    dangling symlink), a file in a subfolder (``encoders/audio/...``)
    keeps its relative path under ``savedir``, and a hub id that does not
    resolve (offline, or not a model) is a one-line error.

    Arguments
    ---------
    source : str or speechbrain.utils.fetching.FetchSource
        A model folder or hub id (see :func:`.model_source.export_source`).
    name : str
        The file's path inside the export (``/``-separated).
    savedir : str or path-like, optional
        Where the file goes (None: used where it lies: the folder, or the
        HF hub cache).
    local_strategy : speechbrain.utils.fetching.LocalStrategy
        Symlink or copy into ``savedir``.
    fetch_config : speechbrain.utils.fetching.FetchConfig, optional
        SpeechBrain's fetch options (revision, cache folder, ...).

    Returns
    -------
    pathlib.Path
        The local file.

    Raises
    ------
    ExportLoadError
        Naming the file or source.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "labels.txt").write_text("neu\\n")
    >>> fetch_file(str(folder), "labels.txt").read_text()
    'neu\\n'
    >>> fetch_file(str(folder), "system.ckpt")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: .../system.ckpt: \
missing; ... is not a complete model folder written by mtmm export: give \
the folder that mtmm export --out wrote
    """
    fetch_config = fetch_config or FetchConfig()
    kind, where = guess_source(source)
    if kind == FetchFrom.LOCAL and not (Path(where) / name).is_file():
        raise ExportLoadError(
            f"{Path(where) / name}: missing; {where} is not a complete model "
            "folder written by mtmm export: give the folder that mtmm export "
            "--out wrote"
        )
    if savedir is not None:
        (Path(savedir) / name).parent.mkdir(parents=True, exist_ok=True)
    try:
        return fetch(
            filename=name,
            source=source,
            savedir=savedir,
            local_strategy=local_strategy,
            fetch_config=fetch_config,
        )
    except (huggingface_hub.errors.HFValidationError, ValueError) as error:
        if kind == FetchFrom.HUGGING_FACE and not HUB_ID.match(str(where)):
            raise ExportLoadError(
                f"{where}: no such folder (nor an HF hub id, org/name)"
            ) from None
        raise _hub_error(where, name, error) from None
    except (OSError, huggingface_hub.errors.HfHubHTTPError) as error:
        raise _hub_error(where, name, error) from None


def _hub_error(source, name, error):
    """The one-line error of a hub file that could not be fetched."""
    if isinstance(error, huggingface_hub.errors.RemoteEntryNotFoundError):
        return ExportLoadError(
            f"{source}: {name} is not in the hub repository: not a complete "
            "model written by mtmm export; upload the whole folder that "
            "mtmm export wrote"
        )
    if huggingface_hub.constants.HF_HUB_OFFLINE:
        where = (
            f"not in the HF hub cache ({huggingface_hub.constants.HF_HUB_CACHE}"
            ") and HF_HUB_OFFLINE is set"
        )
        todo = "download the model with network access, or unset HF_HUB_OFFLINE"
    else:
        where = "could not be fetched from the HF hub"
        todo = "check the hub id and your network or token"
    return ExportLoadError(
        f"{source}: {name} {where} ({type(error).__name__}); {todo}, or give "
        "a local model folder"
    )


def read_digests(path):
    """The SHA-256 digests an ``export_info.json`` records, after checking
    its own digest (``self_sha256``).

    Arguments
    ---------
    path : str or path-like
        The ``export_info.json``.

    Returns
    -------
    dict
        File path inside the export -> hex digest.

    Raises
    ------
    ExportLoadError
        Naming the file: not JSON, no digests, changed since the export, a
        path outside the folder.

    Example
    -------
    >>> import json
    >>> from speechbrain_mtmm.run_folder import json_digest
    >>> path = getfixture("tmp_path") / "export_info.json"
    >>> info = {"sha256": {"system.ckpt": "ab"}}
    >>> info["self_sha256"] = json_digest(info)
    >>> _ = path.write_text(json.dumps(info))
    >>> read_digests(path)
    {'system.ckpt': 'ab'}
    >>> _ = path.write_text(json.dumps({**info, "validation": 1}))
    >>> read_digests(path)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: \
...export_info.json: \
changed since the export (its content differs from its self_sha256); \
fetch the model again or export it again
    """
    try:
        info = read_json(path)
    except (ValueError, UnicodeDecodeError):
        info = None
    if not isinstance(info, dict):
        raise ExportLoadError(
            f"{path}: not an export_info.json written by mtmm export (no "
            "JSON mapping); export the model again"
        )
    digests = info.get("sha256")
    if not isinstance(digests, dict) or not digests:
        raise ExportLoadError(
            f"{path}: no sha256 mapping (the digests of the export's "
            f"files): its files cannot be checked; {RESIGN}"
        )
    if SELF_DIGEST not in info:
        raise ExportLoadError(
            f"{path}: no {SELF_DIGEST} (the digest of its own content: an "
            f"export made before speechbrain-mtmm 0.2.1?); {RESIGN}"
        )
    rest = {key: value for key, value in info.items() if key != SELF_DIGEST}
    if info[SELF_DIGEST] != json_digest(rest):
        raise ExportLoadError(
            f"{path}: changed since the export (its content differs from "
            f"its {SELF_DIGEST}); fetch the model again or export it again"
        )
    for name, digest in digests.items():  # fetched under savedir only
        parts = PurePosixPath(name).parts
        if not parts or name.startswith("/") or "\\" in name or ".." in parts:
            raise ExportLoadError(
                f"{path}: {name!r} is not a path inside the model folder; "
                "export the model again"
            )
        if not isinstance(digest, str):
            raise ExportLoadError(
                f"{path}: the digest of {name} is not a string; export the "
                "model again"
            )
    return digests


def files_to_load(digests, onnx=False, int8=False):
    """The files of an export that loading reads.

    Arguments
    ---------
    digests : dict
        ``export_info.json``'s digests (every file of the export).
    onnx : bool
        The ONNX backend (``hyperparams.yaml``, ``labels.txt`` and the
        graphs) instead of PyTorch (everything else but the model card).
    int8 : bool
        The int8 graphs (with ``onnx``).

    Returns
    -------
    list of str
        Paths inside the export, sorted.

    Example
    -------
    >>> names = ["README.md", "hyperparams.yaml", "system.ckpt",
    ...          "onnx/head.onnx", "onnx/int8/head.onnx"]
    >>> names += ["labels.txt"]
    >>> files_to_load(dict.fromkeys(names))
    ['hyperparams.yaml', 'labels.txt', 'system.ckpt']
    >>> files_to_load(dict.fromkeys(names), onnx=True)
    ['hyperparams.yaml', 'labels.txt', 'onnx/head.onnx']
    """

    def wanted(name):
        """Whether the backend reads the file."""
        if not onnx:
            return not name.startswith(ONNX_PREFIX) and name not in DOC_FILES
        if name in (HYPERPARAMS, LABELS_FILE):
            return True
        if not name.startswith(ONNX_PREFIX):
            return False
        if name.startswith(INT8_PREFIX):
            return bool(int8)
        return not int8 or not name.endswith((".onnx", ".onnx.data"))

    return sorted(name for name in digests if wanted(name))


def verify_digests(folder, names, digests, error=ExportLoadError):
    """Checks files against the digests of ``export_info.json``.

    Arguments
    ---------
    folder : str or path-like
        Where the export's files lie.
    names : list of str
        The files to check (paths inside the export).
    digests : dict
        Path -> SHA-256, from :func:`read_digests`.
    error : type
        The exception raised (``OnnxBackendError`` for the graphs).

    Raises
    ------
    ExportLoadError
        (or ``error``) Naming the first file that is missing, not covered
        by the digests, or whose bytes differ.

    Example
    -------
    >>> from speechbrain_mtmm.run_folder import file_digest
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "a.txt").write_text("a")
    >>> verify_digests(folder, ["a.txt"], {"a.txt": file_digest(folder /
    ...                "a.txt")})
    >>> verify_digests(folder, ["a.txt"], {"a.txt": "0" * 64})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: \
.../a.txt: missing \
or changed since the export (SHA-256 differs from export_info.json); fetch \
the model again or export it again
    """
    wrong = check_digests(folder, names, digests, EXPORT_INFO)
    if wrong:
        raise error(f"{wrong}; fetch the model again or export it again")


def fetch_export(
    source,
    names,
    savedir=None,
    local_strategy=LocalStrategy.SYMLINK,
    fetch_config=None,
    digests=None,
    error=ExportLoadError,
):
    """Fetches files of an export into one folder and checks their digests.

    Arguments
    ---------
    source : str or speechbrain.utils.fetching.FetchSource
        A model folder or hub id.
    names : list of str
        Paths inside the export.
    savedir, local_strategy, fetch_config
        As for :func:`fetch_file`.
    digests : dict, optional
        The export's digests (None: read from its ``export_info.json``).
    error : type
        Raised for a file whose digest differs (see
        :func:`verify_digests`).

    Returns
    -------
    pathlib.Path
        The folder they lie in, relative paths kept: ``savedir``, the
        model folder itself, or the hub cache snapshot.

    Raises
    ------
    ExportLoadError
        A file that cannot be fetched or differs from the export.

    Example
    -------
    >>> from speechbrain_mtmm.run_folder import file_digest
    >>> model, saved = getfixture("tmp_path") / "m", getfixture("tmp_path")
    >>> (model / "encoders").mkdir(parents=True)
    >>> _ = (model / "encoders" / "config.json").write_text("{}")
    >>> digests = {"encoders/config.json": file_digest(
    ...     model / "encoders" / "config.json")}
    >>> fetch_export(str(model), list(digests), saved / "s", digests=digests)
    PosixPath('.../s')
    """
    if digests is None:
        info = fetch_file(
            source, EXPORT_INFO, savedir, local_strategy, fetch_config
        )
        digests = read_digests(info)
    folder = None
    for name in names:
        path = fetch_file(source, name, savedir, local_strategy, fetch_config)
        root = fetched_root(path, name)
        if folder is None:
            folder = root
        elif os.path.abspath(root) != os.path.abspath(folder):
            raise ExportLoadError(
                f"{source}: {name} was fetched to {root}, not beside the "
                f"other files in {folder}; pass a savedir"
            )
    verify_digests(folder, names, digests, error)
    check_unlisted(folder, names, digests, error)
    return folder


def check_unlisted(folder, names, digests, error=ExportLoadError):
    """Refuses a file that the digests do not list in a folder that is
    read whole (an encoder's or tokenizer's: transformers reads whatever
    files are there).

    Arguments
    ---------
    folder : str or path-like
        Where the export's files lie.
    names : list of str
        The files loading reads (which folders it reads).
    digests : dict
        The export's digests.
    error : type
        The exception raised.

    Raises
    ------
    ExportLoadError
        (or ``error``) Naming the first such file.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> (folder / "encoders" / "text").mkdir(parents=True)
    >>> _ = (folder / "encoders" / "text" / "vocab.txt").write_text("a")
    >>> names = ["encoders/text/vocab.txt"]
    >>> check_unlisted(folder, names, dict.fromkeys(names))
    >>> _ = (folder / "encoders" / "text" / "added.json").write_text("{}")
    >>> check_unlisted(folder, names, dict.fromkeys(names))
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: .../added.json: \
not covered by the digests of export_info.json, in a folder that loading \
reads whole; remove it (or load into an empty savedir) or export the \
model again
    """
    folder = Path(folder)
    for prefix in READ_WHOLE:
        if not any(name.startswith(prefix) for name in names):
            continue
        for path in sorted((folder / prefix).rglob("*")):
            name = path.relative_to(folder).as_posix()
            if name not in digests and not path.is_dir():
                raise error(
                    f"{path}: not covered by the digests of {EXPORT_INFO}, "
                    "in a folder that loading reads whole; remove it (or "
                    "load into an empty savedir) or export the model again"
                )


def check_labels(folder, config, error=ExportLoadError):
    """Refuses a ``labels.txt`` that does not name the model's classes in
    their order.

    Arguments
    ---------
    folder : str or path-like
        Where the export's files lie.
    config : dict
        Its ``model_config``.
    error : type
        The exception raised.

    Raises
    ------
    ExportLoadError
        (or ``error``) Naming the file and both orders.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "labels.txt").write_text("neu\\nhap\\n")
    >>> check_labels(folder, {"labels": ["neu", "hap"]})
    >>> check_labels(folder, {"labels": ["hap", "neu"]})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: .../labels.txt: \
neu, hap, but model_config has the labels hap, neu; export the model again
    """
    path = Path(folder) / LABELS_FILE
    if not path.is_file():
        return  # an export without one (checked against the digests)
    listed = path.read_text(encoding="utf-8").split()
    labels = [str(label) for label in config.get("labels", [])]
    if listed != labels:
        raise error(
            f"{path}: {', '.join(listed)}, but model_config has the labels "
            f"{', '.join(labels)}; export the model again"
        )


def fetched_root(path, name):
    """The folder a fetched file lies in, as the export's root.

    Arguments
    ---------
    path : pathlib.Path
        Where ``fetch`` put the file.
    name : str
        Its path inside the export.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> fetched_root(Path("/cache/snap/encoders/text/config.json"),
    ...              "encoders/text/config.json")
    PosixPath('/cache/snap')
    """
    return Path(path).parents[len(Path(name).parts) - 1]


class ExportedSystem(MultimodalEmotionSystem):
    """The system of an exported model, built once its files are fetched.

    HyperPyYAML builds this object while it reads ``hyperparams.yaml``,
    before SpeechBrain's ``Pretrainer`` has fetched anything: it only
    checks and keeps the configuration. :class:`ExportPretrainer` then
    calls :meth:`build` with the folder the export's files were fetched to,
    which makes this same object a complete
    :class:`~speechbrain_mtmm.system.MultimodalEmotionSystem` (frozen,
    encoders built from their configuration: the weights come from
    ``system.ckpt``).

    Arguments
    ---------
    config : dict
        The export's ``model_config``.

    Example
    -------
    >>> from speechbrain_mtmm.system import PAPER_CONFIG
    >>> config = {**PAPER_CONFIG, "d_model": 16, "n_heads": 2,
    ...           "refinement_ffn": 32, "bridge_tokens": 4,
    ...           "audio": {"source": "fbank", "layers": [-1],
    ...                     "light_size": 16},
    ...           "text": {"source": "hashing", "layers": [-1],
    ...                    "light_size": 16}}
    >>> system = ExportedSystem(config)
    >>> system.folder is None, len(list(system.parameters()))
    (True, 0)
    >>> system.build(getfixture("tmp_path"))
    >>> system.text_encoder.frozen, system.labels
    (True, ['neu', 'hap', 'sad', 'ang'])
    """

    def __init__(self, config):
        torch.nn.Module.__init__(self)
        self.config = check_config(config)
        self.folder = None

    def build(self, folder):
        """Builds every module, the local encoder copies found in
        ``folder``.

        Arguments
        ---------
        folder : str or path-like
            Where the export's files lie.
        """
        MultimodalEmotionSystem.__init__(
            self, self.config, freeze="frozen", pretrained=False, root=folder
        )
        self.folder = Path(folder)


class ExportPretrainer(Pretrainer):
    """SpeechBrain's ``Pretrainer`` for an export: fetches its files, then
    builds and loads the system.

    ``collect_files(default_source=...)`` (called by
    ``pretrained_from_hparams``, hence by ``from_hparams`` and
    ``foreign_class``) fetches every file that loading reads into one
    folder (the ``collect_in`` savedir when given), relative paths kept,
    and checks them against ``export_info.json``; ``load_collected``
    builds the :class:`ExportedSystem` there and loads ``system.ckpt``
    strictly (``weights_only=True``).

    Arguments
    ---------
    system : ExportedSystem
        The export's system.
    collect_in : str or path-like, optional
        The savedir (``pretrained_from_hparams`` sets it).

    Example
    -------
    >>> pretrainer = ExportPretrainer(None)
    >>> pretrainer.collect_files()
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: ExportPretrainer: \
no source given; load the model with from_hparams(source=...)
    """

    def __init__(self, system, collect_in=None):
        super().__init__(
            collect_in=collect_in,
            loadables={"system": system},
            custom_hooks={"system": self._load_system},
        )
        self.folder = None

    def collect_files(
        self,
        default_source=None,
        local_strategy=LocalStrategy.SYMLINK,
        fetch_config=None,
    ):
        """Fetches and checks the export's files.

        Arguments
        ---------
        default_source : str or speechbrain.utils.fetching.FetchSource
            The model folder or hub id.
        local_strategy : speechbrain.utils.fetching.LocalStrategy
            Symlink or copy into the savedir.
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
            SpeechBrain's fetch options.

        Returns
        -------
        dict
            ``{"system": path of system.ckpt}``.
        """
        if default_source is None:
            raise ExportLoadError(
                "ExportPretrainer: no source given; load the model with "
                "from_hparams(source=...)"
            )
        info = fetch_file(
            default_source,
            EXPORT_INFO,
            self.collect_in,
            local_strategy,
            fetch_config,
        )
        digests = read_digests(info)
        if HYPERPARAMS not in digests:
            raise ExportLoadError(
                f"{info}: no digest of {HYPERPARAMS}; export the model again"
            )
        self.folder = fetch_export(
            default_source,
            files_to_load(digests),
            self.collect_in,
            local_strategy,
            fetch_config,
            digests,
        )
        path = self.folder / SYSTEM_FILE
        self.paths["system"] = str(path)
        self.is_local.append("system")
        return {"system": path}

    def _load_system(self, system, path):
        """Load hook: builds the system beside its files, then loads the
        weights."""
        check_labels(self.folder, system.config)
        system.build(self.folder)
        load_state_dict_strict(system, path)


def yaml_tags(path):
    """Every tagged node of a YAML file, read without building anything.

    Arguments
    ---------
    path : str or path-like
        A YAML file.

    Returns
    -------
    tuple
        ``(key path, tag, scalar value or "")`` in file order.

    Example
    -------
    >>> path = getfixture("tmp_path") / "h.yaml"
    >>> _ = path.write_text("a: 1\\nb: !ref <a>\\nc: !new:x.Y\\n    d: 2\\n")
    >>> yaml_tags(path)
    ((('b',), '!ref', '<a>'), (('c',), '!new:x.Y', ''))
    >>> _ = path.write_text("? !!python/name:os.system\\n: 1\\n")
    >>> yaml_tags(path)
    ((('? (key)',), '!!python/name:os.system', ''),)
    """
    with open(path, encoding="utf-8") as fin:
        try:
            root = ruamel.yaml.YAML(typ="safe", pure=True).compose(fin)
        except ruamel.yaml.YAMLError as error:
            line = getattr(getattr(error, "problem_mark", None), "line", None)
            where = "" if line is None else f" (line {line + 1})"
            raise ExportLoadError(
                f"{path}: not valid YAML{where}; export the model again"
            ) from None
    found = []
    seen = set()

    def walk(node, keys):
        """Records tagged nodes under ``node`` (keys included)."""
        if id(node) in seen:
            return
        seen.add(id(node))
        tag = str(getattr(node.tag, "value", node.tag) or "")
        if tag and tag not in CORE_TAGS:
            value = node.value if isinstance(node.value, str) else ""
            found.append((keys, _short_tag(tag), value))
        if isinstance(node, ruamel.yaml.nodes.MappingNode):
            for key, value in node.value:
                name = key.value if isinstance(key.value, str) else ""
                name = name or "?"
                walk(key, (*keys, f"{name} (key)"))
                walk(value, (*keys, str(name)))
        elif isinstance(node, ruamel.yaml.nodes.SequenceNode):
            for index, value in enumerate(node.value):
                walk(value, (*keys, index))

    if root is not None:
        walk(root, ())
    return tuple(found)


def _short_tag(tag):
    """A tag as it would be written: ``!!python/...`` for the YAML
    namespace."""
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def check_trusted(path, trust_remote_code=False):
    """Refuses a ``hyperparams.yaml`` that would run code ``mtmm export``
    does not write, unless the caller trusts it.

    Its tags (``!new:``, ``!name:``, ``!apply:``, ``!ref``, ...) must be
    exactly those of an export, and its ``model_config`` must name only
    registered blocks (:mod:`speechbrain_mtmm.nnet.builders`), no class by
    import path, as ``fusion_type``, ``refinement_type`` or ``heads_type``.

    Arguments
    ---------
    path : str or path-like
        The ``hyperparams.yaml``.
    trust_remote_code : bool
        Allow any tag and class (as in transformers).

    Returns
    -------
    str
        ``"export"``, ``"legacy"`` (an export made before
        ``custom_interface.py``, whose folder is a placeholder) or
        ``"trusted"`` (other tags, allowed by ``trust_remote_code``).

    Raises
    ------
    ExportLoadError
        Naming the file and the first tag or class that differs.

    Example
    -------
    >>> path = getfixture("tmp_path") / "hyperparams.yaml"
    >>> _ = path.write_text("x: !apply:os.system ['ls']\\n")
    >>> check_trusted(path, trust_remote_code=True)
    'trusted'
    >>> check_trusted(path)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.model_source.ExportLoadError: \
...hyperparams.yaml: \
x: !apply:os.system is not what mtmm export writes (it would run code); \
load it with trust_remote_code=True (mtmm predict --trust_remote_code) only \
if you trust its source
    """
    tags = yaml_tags(path)
    kind = {EXPORT_TAGS: "export", LEGACY_TAGS: "legacy"}.get(tags)
    if kind is None and not trust_remote_code:
        extra = [t for t in tags if t not in EXPORT_TAGS + LEGACY_TAGS]
        if extra:
            keys, tag, value = extra[0]
            what = f"{'.'.join(map(str, keys))}: {tag} {value}".rstrip()
        else:
            what = "its tags differ from an export's (removed or moved)"
        raise ExportLoadError(
            f"{path}: {what} is not what mtmm export writes (it would run "
            "code); load it with trust_remote_code=True (mtmm predict "
            "--trust_remote_code) only if you trust its source"
        )
    try:
        config = _plain_yaml(path).get("model_config")
    except (ruamel.yaml.YAMLError, AttributeError, TypeError):
        if not trust_remote_code:
            raise ExportLoadError(
                f"{path}: not the YAML mtmm export writes; export the model "
                "again"
            ) from None
        config = None  # trusted: HyperPyYAML reads it as it is
    config = config if isinstance(config, dict) else {}
    for key, block in CLASS_KEYS.items():
        value = config.get(key)
        if not isinstance(value, str) or trust_remote_code:
            continue
        if not is_builtin(block, value):
            raise ExportLoadError(
                f"{path}: model_config {key} is {value}, a class from "
                "outside speechbrain-mtmm (its code would run); load it "
                "with trust_remote_code=True (mtmm predict "
                "--trust_remote_code) only if you trust its source"
            )
    return kind or "trusted"


def plain_hparams(folder, overrides=None):
    """A model folder's hyperparameters, references resolved, nothing
    built: tagged entries (``!new:``, ...) are left out, so the file cannot
    run code.

    Arguments
    ---------
    folder : pathlib.Path
        The model folder (or where its files were fetched to).
    overrides : dict, optional
        Changes to the plain entries.

    Returns
    -------
    dict
        Plain values (``model_folder`` set to ``folder`` for exports made
        before ``custom_interface.py``, which have that entry).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> _ = (folder / "hyperparams.yaml").write_text(
    ...     "a: 2\\nb: !ref <a>\\nc: !new:os.getcwd\\n")
    >>> plain_hparams(folder, {"a": 3})
    {'a': 3, 'b': 3}
    """
    path = Path(folder) / HYPERPARAMS
    if not path.is_file():
        raise ExportLoadError(
            f"{folder}: no {HYPERPARAMS} here; give a model folder written "
            "by mtmm export"
        )
    overrides = dict(overrides or {})
    if "model_folder" in _plain_yaml(path):  # an export before 0.3
        overrides.setdefault("model_folder", str(folder))
    return read_plain_yaml(path, overrides)


def _plain_yaml(path):
    """A YAML mapping as written, tagged nodes as ``TAGGED``."""
    return read_plain_yaml(path, resolve=False, keep_tagged=True)
