"""The whole model, described once: encoders, layer sums, fusion, heads.

Like a transformers ``configuration_*.py`` beside its ``modeling_*.py``,
what the model *is* is one plain mapping, ``config``: the label set, the
dimensions, the modalities, the input (sample rate, crop length), each
encoder (``source``, the hidden ``layers`` it contributes, its light width
or token limit) and the paper's architecture (width, heads, refinement,
fusion type, bridge tokens, dropout). Each encoder section may also say
how that encoder is fine-tuned (``freeze``), so that a preset carries
its own policy. :class:`MultimodalEmotionSystem`
builds every module from it, and nothing else does: the recipe builds it
from the ``model_config`` section of its YAML, and an exported model
rebuilds it from the same mapping saved in the export (with
``pretrained=False``: the fine-tuned weights, layer sums included, come
from the export's checkpoint). An exported model therefore cannot differ
from the trained one.

Where HF downloads go is not part of ``config``: it is a constructor
argument, as is a freeze policy that overrides the sections' (an exported
model is built frozen).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import copy
import json
import os
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)

from speechbrain_mtmm.encoders import (
    LIGHT_SIZE,
    MAX_TOKENS,
    MODALITIES,
    build_encoder,
)
from speechbrain_mtmm.nnet.builders import BlockError, build_block
from speechbrain_mtmm.nnet.layer_sum import WeightedLayerSum
from speechbrain_mtmm.nnet.masking import masked_modality_features
from speechbrain_mtmm.nnet.model import MultimodalEmotionModel
from speechbrain_mtmm.run_folder import (
    DIMENSIONS,
    RATING_SCALE,
    TASKS,
    classes_trained,
    trained_dimensions,
)

# The configuration of the paper (Ispas et al., ICMI 2023) and its keys
PAPER_CONFIG = {
    "labels": ["neu", "hap", "sad", "ang"],
    "n_dims": 2,
    "rating_scale": list(RATING_SCALE),
    "modalities": ["audio", "text"],
    "sample_rate": 16000,
    "max_audio_seconds": 20.0,
    "audio": {
        "source": "facebook/hubert-large-ll60k",
        "layers": [-1],
        "freeze": "paper",
        "light_size": LIGHT_SIZE,
    },
    "text": {
        "source": "microsoft/deberta-v3-large",
        "layers": [-1],
        "freeze": "paper",
        "max_length": MAX_TOKENS,
        "light_size": LIGHT_SIZE,
    },
    "d_model": 1024,
    "n_heads": 32,
    "refinement": True,
    "refinement_type": "self_attention",
    "refinement_layers": 1,
    "refinement_ffn": 2048,
    "fusion_type": "bridge_crossed",
    "bridge_tokens": 30,
    "fusion_layers": 1,
    "fusion_ffn": 0,
    "dropout": 0.1,
    "heads_type": "emotion_heads",
    # task -> loss weight (classes, valence, ...): an output whose weight
    # is 0 was never trained and is not predicted; None: all were trained
    "loss_weights": None,
}

# Model settings a configuration may leave out (older exports), defaults
MODEL_DEFAULTS = {
    "fusion_ffn": 0,
    "rating_scale": list(RATING_SCALE),
    "refinement_type": "self_attention",
    "heads_type": "emotion_heads",
    "loss_weights": None,
}


# Encoder settings a section may leave out, and their defaults
ENCODER_DEFAULTS = {
    "freeze": "paper",
    "light_size": LIGHT_SIZE,
    "max_length": MAX_TOKENS,
}


class ModelConfigError(ValueError):
    """A model configuration that cannot be built; the message says why."""


def check_config(config):
    """A complete, plain copy of a model configuration.

    Arguments
    ---------
    config : dict
        Keys of :data:`PAPER_CONFIG` (all of them; an encoder section may
        leave out those of :data:`ENCODER_DEFAULTS`).

    Returns
    -------
    dict
        A deep copy with plain lists and dicts, defaults filled in.

    Raises
    ------
    ModelConfigError
        Naming an unknown or a missing key, a bad modality list, or a
        width the attention heads do not divide.

    Example
    -------
    >>> check_config({**PAPER_CONFIG, "fusion_typ": "x"})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.system.ModelConfigError: model config: unknown key \
fusion_typ
    >>> check_config({**PAPER_CONFIG, "d_model": 100, "n_heads": 32})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.system.ModelConfigError: model config: d_model (100) \
must be a multiple of n_heads (32): each attention head takes d_model / \
n_heads features; change d_model or n_heads
    """
    config = _plain(config)
    for key, value in MODEL_DEFAULTS.items():
        config.setdefault(key, value)
    for where, given, expected in _sections(config):
        if where != "model config":
            for key, value in ENCODER_DEFAULTS.items():
                if key in expected:
                    given.setdefault(key, value)
        unknown = sorted(set(given) - set(expected))
        missing = sorted(set(expected) - set(given))
        if unknown:
            raise ModelConfigError(f"{where}: unknown key {', '.join(unknown)}")
        if missing:
            raise ModelConfigError(f"{where}: missing key {', '.join(missing)}")
    scale = config["rating_scale"]
    if (
        not isinstance(scale, list)
        or len(scale) != 2
        or not all(isinstance(v, (int, float)) for v in scale)
        or not scale[0] < scale[1]
    ):
        raise ModelConfigError(
            f"model config: rating_scale must be [lowest, highest] rating, "
            f"got {scale}"
        )
    modalities = config["modalities"]
    if not modalities or set(modalities) - set(MODALITIES):
        raise ModelConfigError(
            f"model config: modalities must be a non-empty subset of "
            f"{list(MODALITIES)}, got {modalities}"
        )
    _check_loss_weights(config["loss_weights"], config["n_dims"])
    width, heads = config["d_model"], config["n_heads"]
    if (
        isinstance(width, int)
        and isinstance(heads, int)
        and heads > 0
        and width % heads
    ):
        raise ModelConfigError(
            f"model config: d_model ({width}) must be a multiple of n_heads "
            f"({heads}): each attention head takes d_model / n_heads "
            "features; change d_model or n_heads"
        )
    return config


def _check_loss_weights(weights, n_dims):
    if weights is None:
        return
    if not isinstance(weights, dict) or set(weights) - set(TASKS):
        raise ModelConfigError(
            f"model config: loss_weights must map some of {list(TASKS)} "
            f"to a weight, got {weights}"
        )
    if not all(
        isinstance(w, (int, float)) and w >= 0 for w in weights.values()
    ):
        raise ModelConfigError(
            f"model config: loss weights must be numbers >= 0, got {weights}"
        )
    if not any(w > 0 for w in weights.values()):
        raise ModelConfigError(
            "model config: every loss weight is 0: nothing is trained"
        )
    beyond = [d for d in DIMENSIONS[n_dims:] if weights.get(d, 0) > 0]
    if beyond:
        raise ModelConfigError(
            f"model config: {', '.join(beyond)} has a loss weight but the "
            f"model predicts {n_dims} dimensions (n_dims: {n_dims + 1} "
            "adds dominance)"
        )


def _sections(config):
    yield "model config", config, PAPER_CONFIG
    for modality in MODALITIES:
        section = config.get(modality)
        if not isinstance(section, dict):
            raise ModelConfigError(
                f"model config: {modality} must be a mapping of encoder "
                f"settings ({', '.join(PAPER_CONFIG[modality])})"
            )
        yield f"model config {modality}", section, PAPER_CONFIG[modality]


def _plain(value):
    """Plain dicts and lists (YAML loaders give their own subclasses)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return copy.deepcopy(value)


@register_checkpoint_hooks
class MultimodalEmotionSystem(torch.nn.Module):
    """Everything that maps audio and a transcript to emotions.

    Children: ``audio_encoder`` and ``text_encoder``
    (:func:`~speechbrain_mtmm.encoders.build_encoder`), ``audio_layer_sum``
    and ``text_layer_sum`` (:class:`~speechbrain_mtmm.nnet.WeightedLayerSum`
    over the configured hidden ``layers``; no parameter for one layer) and
    ``model`` (:class:`~speechbrain_mtmm.nnet.MultimodalEmotionModel`:
    projection, self-attention refinement, fusion, heads). A SpeechBrain
    ``Brain`` gets the children as its modules (:meth:`parts`), so DDP
    wraps each on its own; the checkpointer saves the system as one file,
    ``<name>.ckpt``, holding what training changes: an encoder whose
    freeze policy is ``"frozen"`` is left out and recorded, with its
    source and fingerprint, in ``<name>.frozen.json`` beside it (it is
    rebuilt from its source; loading checks the fingerprint).

    Arguments
    ---------
    config : dict
        The model configuration (see the module docstring and
        :data:`PAPER_CONFIG`).
    freeze : str, optional
        A freeze policy for both encoders (``"paper"``, ``"frozen"`` or
        ``"trainable"``) instead of the sections' own ``freeze``.
    save_path : str, optional
        HF download cache.
    pretrained : bool
        Load pretrained encoder weights (False: an exported model, whose
        weights come from its checkpoint).
    root : str, optional
        A folder relative encoder sources are resolved against (the
        exported model's folder).

    Example
    -------
    >>> config = {**PAPER_CONFIG, "d_model": 16, "n_heads": 2,
    ...           "refinement_ffn": 32, "bridge_tokens": 4,
    ...           "audio": {"source": "fbank", "layers": [-1],
    ...                     "light_size": 16},
    ...           "text": {"source": "hashing", "layers": [-1],
    ...                    "freeze": "frozen", "light_size": 16}}
    >>> system = MultimodalEmotionSystem(config)
    >>> system.audio_encoder.freeze_policy, system.text_encoder.frozen
    ('paper', True)
    >>> sorted(system.parts())
    ['audio_encoder', 'audio_layer_sum', 'model', 'text_encoder', \
'text_layer_sum']
    >>> wav, wav_lens = torch.randn(2, 16000), torch.tensor([1.0, 0.5])
    >>> tokens = system.text_encoder.tokenize("I got the job!")
    >>> audio = system.encode("audio", wav, wav_lens)
    >>> text = system.encode("text", tokens.repeat(2, 1), torch.ones(2))
    >>> out = system(*audio, *text)
    >>> out["logits"].shape, out["dims"].shape
    (torch.Size([2, 4]), torch.Size([2, 2]))
    """

    def __init__(
        self, config, freeze=None, save_path=None, pretrained=True, root=None
    ):
        super().__init__()
        self.config = check_config(config)
        config = self.config
        for modality in MODALITIES:
            section = config[modality]
            encoder = build_encoder(
                modality,
                _resolve(section["source"], root),
                freeze=freeze or section["freeze"],
                save_path=save_path,
                pretrained=pretrained,
                light_size=section["light_size"],
                max_length=section.get("max_length", MAX_TOKENS),
                sample_rate=config["sample_rate"],
            )
            layers = encoder.normalize_layers(section["layers"])
            setattr(self, f"{modality}_encoder", encoder)
            setattr(
                self, f"{modality}_layer_sum", WeightedLayerSum(len(layers))
            )
        try:
            self.model = self._build_model(config)
        except BlockError as error:
            raise ModelConfigError(f"model config: {error}") from None

    def _build_model(self, config):
        """Projection, refinement, fusion and heads, each block by its
        registered name or import path
        (:mod:`speechbrain_mtmm.nnet.builders`)."""
        width = config["d_model"]

        def refinement():
            """One modality's refinement module (None when off)."""
            if not config["refinement"]:
                return None
            return build_block(
                "refinement",
                config["refinement_type"],
                d_model=width,
                nhead=config["n_heads"],
                num_layers=config["refinement_layers"],
                d_ffn=config["refinement_ffn"],
                dropout=config["dropout"],
            )

        fusion = build_block(
            "fusion",
            config["fusion_type"],
            d_model=width,
            nhead=config["n_heads"],
            num_tokens=config["bridge_tokens"],
            num_layers=config["fusion_layers"],
            d_ffn=config["fusion_ffn"],
            dropout=config["dropout"],
        )
        heads = build_block(
            "heads",
            config["heads_type"],
            input_size=fusion.output_size,
            n_classes=len(config["labels"]),
            n_dims=config["n_dims"],
            dropout=config["dropout"],
        )
        return MultimodalEmotionModel(
            fusion=fusion,
            heads=heads,
            d_model=width,
            audio_input_size=self.audio_encoder.output_size,
            text_input_size=self.text_encoder.output_size,
            audio_refinement=refinement(),
            text_refinement=refinement(),
        )

    @property
    def labels(self):
        """The class order of the classifier."""
        return self.config["labels"]

    @property
    def n_dims(self):
        """How many dimensions the regressor has (trained or not)."""
        return self.config["n_dims"]

    @property
    def dimensions(self):
        """The dimensions it was trained to predict, in output order."""
        return trained_dimensions(self.config)

    @property
    def classes_trained(self):
        """Whether it was trained to predict classes."""
        return classes_trained(self.config)

    def encoder(self, modality):
        """The encoder of ``"audio"`` or ``"text"``."""
        return getattr(self, f"{modality}_encoder")

    def layers(self, modality):
        """The hidden states of a modality's encoder that the model uses.

        Arguments
        ---------
        modality : str
            ``"audio"`` or ``"text"``.

        Returns
        -------
        list of int
            Non-negative indices (``[-1]`` for the light encoders).
        """
        encoder = self.encoder(modality)
        return encoder.normalize_layers(self.config[modality]["layers"])

    def parts(self, encoders=True):
        """The children, as SpeechBrain ``Brain`` modules.

        Arguments
        ---------
        encoders : bool
            Include the encoders (False: their features come from the
            feature cache, and they are not run).

        Returns
        -------
        dict
            Name -> module.
        """
        names = ["audio_layer_sum", "text_layer_sum", "model"]
        if encoders:
            names = ["audio_encoder", "text_encoder", *names]
        return {name: getattr(self, name) for name in names}

    def encode(self, modality, inputs, lens, modules=None):
        """Runs one modality's encoder and combines its layers.

        Arguments
        ---------
        modality : str
            ``"audio"`` or ``"text"``.
        inputs : torch.Tensor
            Padded waveforms or token ids ``(batch, length)``.
        lens : torch.Tensor or None
            Relative lengths.
        modules : dict, optional
            The modules to call (a ``Brain``'s, which DDP may wrap);
            default: this system's own (:meth:`parts`).

        Returns
        -------
        feats : torch.Tensor
            ``(batch, frames, dim)``.
        lens : torch.Tensor or None
            Exact relative lengths of the frames.
        """
        modules = self.parts() if modules is None else modules
        encoder = modules[f"{modality}_encoder"]
        stacked = encoder(inputs, lens, self.layers(modality))
        lens = self.encoder(modality).output_lens(
            lens, inputs.shape[1], stacked.shape[1]
        )
        return self.combine_layers(modality, stacked, modules), lens

    def combine_layers(self, modality, stacked, modules=None):
        """The learned weighted sum of stacked hidden states.

        Arguments
        ---------
        modality : str
            ``"audio"`` or ``"text"``.
        stacked : torch.Tensor
            ``(batch, frames, layers, dim)``, from the encoder or the
            feature cache.
        modules : dict, optional
            As for :meth:`encode`.

        Returns
        -------
        torch.Tensor
            ``(batch, frames, dim)``.
        """
        modules = self.parts() if modules is None else modules
        return modules[f"{modality}_layer_sum"](stacked)

    def masked(self, modality, batch_size, device=None, dtype=None):
        """A masked or missing modality: one zero frame per utterance.

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
            ``(batch, 1, dim)`` zeros and relative lengths of 1.
        """
        dim = self.encoder(modality).output_size
        return masked_modality_features(batch_size, dim, device, dtype)

    def frozen_encoders(self):
        """The encoders whose weights training never changes.

        Returns
        -------
        list of str
            Modalities whose encoder's freeze policy is ``"frozen"``.
        """
        return [
            modality
            for modality in MODALITIES
            if self.encoder(modality).freeze_policy == "frozen"
        ]

    def _frozen_record(self):
        """Source and fingerprint of each frozen encoder (computed once:
        their weights do not change)."""
        if getattr(self, "_frozen_cache", None) is None:
            self._frozen_cache = {
                modality: {
                    "source": str(self.config[modality]["source"]),
                    "fingerprint": self.encoder(modality).fingerprint(),
                }
                for modality in self.frozen_encoders()
            }
        return self._frozen_cache

    @mark_as_saver
    def save_trained(self, path):
        """Saves the weights training changes (checkpoint hook).

        Arguments
        ---------
        path : str or path-like
            ``<name>.ckpt``; frozen encoders go to ``<name>.frozen.json``
            as source + fingerprint.
        """
        frozen = self._frozen_record()
        prefixes = tuple(f"{m}_encoder." for m in frozen)
        state = {
            key: value
            for key, value in self.state_dict().items()
            if not key.startswith(prefixes)
        }
        torch.save(state, path)
        if frozen:
            with open(_frozen_path(path), "w", encoding="utf-8") as fout:
                json.dump(frozen, fout, indent=2)

    @mark_as_loader
    def load_trained(self, path, end_of_epoch=False):
        """Loads a checkpoint written by :meth:`save_trained`.

        Arguments
        ---------
        path : str or path-like
            ``<name>.ckpt``.
        end_of_epoch : bool
            Unused (SpeechBrain's loader signature).

        Raises
        ------
        RuntimeError
            Naming the file, when a frozen encoder differs from the one the
            checkpoint was trained with, or the weights do not fit.
        """
        del end_of_epoch
        recorded = {}
        if _frozen_path(path).is_file():
            with open(_frozen_path(path), encoding="utf-8") as fin:
                recorded = json.load(fin)
        for modality, record in recorded.items():
            if self.encoder(modality).fingerprint() != record["fingerprint"]:
                raise RuntimeError(
                    f"{path}: the frozen {modality} encoder "
                    f"({record['source']}) is not the one this checkpoint "
                    "was trained with (its weights differ)"
                )
        load_weights(self, path, skip=[f"{m}_encoder." for m in recorded])

    def forward(self, audio, audio_lens, text, text_lens):
        """Refines, fuses and predicts from both modalities' features.

        Arguments
        ---------
        audio, text : torch.Tensor
            ``(batch, frames, dim)`` features of each modality.
        audio_lens, text_lens : torch.Tensor or None
            Their relative lengths.

        Returns
        -------
        dict
            ``logits`` (if the classes were trained), ``dims`` (0-1, the
            trained :attr:`dimensions`, if any) and ``embedding``.
        """
        out = self.model(audio, audio_lens, text, text_lens)
        return trained_outputs(out, self.config)


def trained_outputs(out, config):
    """The outputs of the model that were trained, the others left out.

    Arguments
    ---------
    out : dict
        ``logits``, ``dims`` (every regressor column) and ``embedding``.
    config : dict
        The model configuration.

    Returns
    -------
    dict
        ``logits`` only if the classes were trained; ``dims`` with the
        columns of :func:`trained_dimensions`, only if there are any.

    Example
    -------
    >>> out = {"logits": torch.zeros(1, 4), "dims": torch.tensor([[.1, .2]]),
    ...        "embedding": torch.zeros(1, 8)}
    >>> weights = {"classes": 0.0, "valence": 0.0, "arousal": 1.0}
    >>> kept = trained_outputs(out, {"n_dims": 2, "loss_weights": weights})
    >>> sorted(kept), kept["dims"]
    (['dims', 'embedding'], tensor([[0.2000]]))
    """
    out = dict(out)
    if not classes_trained(config):
        del out["logits"]
    names = trained_dimensions(config)
    if not names:
        del out["dims"]
    elif len(names) < out["dims"].shape[-1]:
        out["dims"] = out["dims"][:, [DIMENSIONS.index(n) for n in names]]
    return out


def load_weights(module, path, skip=()):
    """Loads a weights file into ``module``, every parameter matching.

    Read with ``torch.load(weights_only=True)``, so that the file can run
    no code; a parameter missing from the file or one the module lacks is
    an error (``load_state_dict``'s non-strict default only warns in
    SpeechBrain's transfer).

    Arguments
    ---------
    module : torch.nn.Module
        The module built from the model's description.
    path : str or path-like
        A state-dict file (``<name>.ckpt``).
    skip : sequence of str
        Prefixes of parameters the file may lack (frozen encoders, rebuilt
        from their sources).

    Raises
    ------
    RuntimeError
        Naming the file and the parameters that do not fit.

    Example
    -------
    >>> path = getfixture("tmpdir") / "linear.ckpt"
    >>> torch.save(torch.nn.Linear(2, 3).state_dict(), path)
    >>> load_weights(torch.nn.Linear(2, 3), path)
    >>> load_weights(torch.nn.Sequential(torch.nn.Linear(2, 3)), path)
    Traceback (most recent call last):
    ...
    RuntimeError: ...linear.ckpt: the weights do not fit the model (missing \
['0.weight', '0.bias'], unexpected ['weight', 'bias'])
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a parameter of another shape
        details = "; ".join(line.strip() for line in str(error).splitlines())
        raise RuntimeError(
            f"{path}: the weights do not fit the model: {details}"
        ) from None
    missing = [k for k in missing if not k.startswith(tuple(skip))]
    if missing or unexpected:
        raise RuntimeError(
            f"{path}: the weights do not fit the model (missing "
            f"{missing[:5]}, unexpected {unexpected[:5]})"
        )


def _frozen_path(path):
    """``<name>.frozen.json`` beside ``<name>.ckpt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.frozen.json")


def _resolve(source, root):
    """A relative source inside ``root`` (an export), else as given."""
    if root is not None:
        candidate = os.path.join(root, str(source))
        if os.path.isdir(candidate):
            return candidate
    return source
