"""What every encoder offers: one small interface for audio and text.

Ispas et al. (ICMI 2023) encode the audio with HuBERT-large and the gold
transcript with DeBERTaV3-large, freeze the CNN feature extractor and the
embedding layer, and fine-tune the transformer layers; Random Modality
Masking freezes a whole encoder for the epochs in which its modality is
masked. Every encoder (:mod:`.huggingface`, :mod:`.light`) derives from
:class:`Encoder` and so offers:

* ``modality``: ``"audio"`` or ``"text"``; ``output_size``: feature width
  (read from the loaded config for HF encoders, never hard-coded);
  ``num_layers``: transformer layers (None: no hidden states to choose);
* ``forward(inputs, lens)`` -> ``(batch, time, output_size)``, the last
  layer, where ``lens`` are SpeechBrain relative lengths in [0, 1] and
  padding is masked so that it does not change the valid frames;
* ``hidden_states(inputs, lens, layers)`` -> ``(batch, time, layers,
  output_size)``, the chosen hidden states stacked (the layout of the
  feature cache and of :class:`~speechbrain_mtmm.nnet.WeightedLayerSum`);
* ``output_lens(lens, num_inputs, num_frames)``: exact relative lengths of
  the output frames;
* ``set_trainable(flag)``: ``False`` freezes the whole encoder (no
  gradients, eval mode, forward under ``torch.no_grad``); ``True``
  restores the configured ``freeze`` policy;
* ``fingerprint()``: a SHA-256 of everything that decides the features
  (class, config, preprocessing, every weight), the feature cache's key;
* text encoders also have ``tokenize(text) -> LongTensor`` for use inside
  a SpeechBrain data pipeline (batches are padded with 0 by the loader;
  the attention mask is built from ``lens``, never from the token ids).

Freeze policies (``freeze=``): ``"paper"`` freezes the CNN feature
extractor + feature projection (audio) or the embedding layer (text) and
trains the transformer layers; ``"frozen"`` freezes everything;
``"trainable"`` trains everything. Frozen parts stay in eval mode even
when the surrounding model is put in train mode.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json

import torch
from speechbrain.dataio.dataio import length_to_mask
from torch import nn

from speechbrain_mtmm.encoders.fingerprints import (
    FingerprintStore,
    default_store_path,
)

FREEZE_POLICIES = ("paper", "frozen", "trainable")
#: Tokens kept per transcript (special tokens included) unless a model's
#: text section says otherwise; IEMOCAP and MSP-Podcast turns are shorter
MAX_TOKENS = 128
#: Width of the light from-scratch encoders (fbank, hashing)
LIGHT_SIZE = 128


class EncoderError(ValueError):
    """An encoder option that cannot work; the message says which."""


def lens_to_mask(lens, max_len, device):
    """Boolean mask ``(batch, max_len)``, True on valid positions.

    Unlike ``make_padding_masks`` the mask always has ``max_len`` columns,
    even if no item in the batch reaches the padded length.

    Arguments
    ---------
    lens : torch.Tensor or None
        ``(batch,)`` relative lengths (None = all full; one row).
    max_len : int
        Padded length.
    device : torch.device
        Where the mask goes.

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> lens_to_mask(torch.tensor([1.0, 0.5]), 4, "cpu").long().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """
    if lens is None:
        return torch.ones(1, max_len, dtype=torch.bool, device=device)
    abs_lens = torch.round(lens.to(device).float() * max_len)
    return length_to_mask(abs_lens, max_len=max_len, dtype=torch.bool)


class Encoder(nn.Module):
    """Freeze policy, layer choice and fingerprint shared by all encoders.

    Subclasses set ``modality``, ``output_size`` and ``num_layers``, call
    ``_init_freeze(policy)`` at the end of ``__init__`` and implement
    ``_encode(inputs, lens, layers)`` (normalised layer indices; returns
    ``(batch, time, len(layers), dim)``); they may override
    ``_policy_frozen_modules`` (the modules the ``"paper"`` policy
    freezes), ``output_lens``, ``_config`` and ``_preprocessing``.
    """

    modality = None
    num_layers = None  # no hidden states to choose from: the output only

    def _init_freeze(self, freeze):
        if freeze not in FREEZE_POLICIES:
            raise EncoderError(
                f"freeze must be one of {FREEZE_POLICIES}, got {freeze!r}"
            )
        self.freeze_policy = freeze
        self._trainable = True
        self._requested_train_mode = self.training
        self._apply_freeze()

    def _policy_frozen_modules(self):
        """Modules frozen by the ``"paper"`` policy."""
        return []

    @property
    def frozen(self):
        """True when the whole encoder is frozen (policy or masking)."""
        return not self._trainable or self.freeze_policy == "frozen"

    def _frozen_modules(self):
        if self.frozen:
            return [self]
        if self.freeze_policy == "paper":
            return self._policy_frozen_modules()
        return []

    def _apply_freeze(self):
        for param in self.parameters():
            param.requires_grad = True
        for module in self._frozen_modules():
            for param in module.parameters():
                param.requires_grad = False
        # HF conv feature encoders force grads on their input unless told
        # that they are frozen; keep that flag in sync (no-op elsewhere).
        for module in self.modules():
            if hasattr(module, "_requires_grad"):
                module._requires_grad = any(
                    p.requires_grad for p in module.parameters()
                )
        self.freeze = self.frozen  # the attribute HF lobes of SB read
        self.train(self._requested_train_mode)

    def train(self, mode=True):
        """Sets train/eval mode; frozen parts always stay in eval mode.

        Arguments
        ---------
        mode : bool
            True for train mode.

        Returns
        -------
        self
        """
        self._requested_train_mode = mode
        super().train(mode)
        if mode:
            for module in self._frozen_modules():
                nn.Module.train(module, False)
        return self

    def set_trainable(self, flag):
        """Freezes the whole encoder (False) or restores its policy (True).

        Used by Random Modality Masking: the masked modality's encoder is
        frozen for an epoch, then its configured ``freeze`` policy returns.

        Arguments
        ---------
        flag : bool
            False: no parameter requires grad, eval mode, and ``forward``
            runs under ``torch.no_grad``. True: the ``freeze`` policy given
            at construction applies again.

        Returns
        -------
        self
        """
        self._trainable = bool(flag)
        self._apply_freeze()
        return self

    def normalize_layers(self, layers):
        """A layer choice as non-negative ``hidden_states`` indices.

        Arguments
        ---------
        layers : list of int or int or str
            Indices into the hidden states (0 = input of the first
            transformer layer, ``-1`` = the last layer, i.e. the output),
            or ``"all"`` (every hidden state: a SUPERB-style weighted sum).
            Encoders without hidden states take only ``[-1]`` (or
            ``"all"``, their output).

        Returns
        -------
        list of int
            ``[-1]`` for encoders without hidden states.

        Raises
        ------
        EncoderError
            For an empty choice or an index out of range.
        """
        if layers == "all":
            if self.num_layers is None:
                return [-1]
            return list(range(self.num_layers + 1))
        if isinstance(layers, int):
            layers = [layers]
        layers = [int(layer) for layer in layers or []]
        if not layers:
            raise EncoderError("the list of encoder layers is empty")
        if self.num_layers is None:
            if layers != [-1]:
                raise EncoderError(
                    f"{type(self).__name__} has no hidden layers to choose "
                    f"from; use [-1] (its output), not {layers}"
                )
            return [-1]
        count = self.num_layers + 1
        for layer in layers:
            if not -count <= layer < count:
                raise EncoderError(
                    f"layer {layer} out of range for {self.num_layers} "
                    f"layers (hidden states 0..{self.num_layers})"
                )
        return [layer % count for layer in layers]

    def forward(self, inputs, lens=None, layers=None):
        """Encodes a padded batch.

        Arguments
        ---------
        inputs : torch.Tensor
            ``(batch, samples)`` waveforms for audio encoders,
            ``(batch, tokens)`` token ids for text encoders, zero-padded.
        lens : torch.Tensor, optional
            ``(batch,)`` relative lengths in [0, 1]; None means all full.
        layers : list of int, optional
            None: the last layer. A list: those hidden states, stacked (as
            :meth:`hidden_states`).

        Returns
        -------
        torch.Tensor
            ``(batch, time, output_size)`` for ``layers=None``, else
            ``(batch, time, len(layers), output_size)``.
        """
        if layers is None:
            return self.hidden_states(inputs, lens, [-1])[:, :, 0]
        return self.hidden_states(inputs, lens, layers)

    def hidden_states(self, inputs, lens, layers):
        """Encodes a padded batch and stacks the chosen hidden states.

        Arguments
        ---------
        inputs : torch.Tensor
            As for ``forward``.
        lens : torch.Tensor or None
            As for ``forward``.
        layers : list of int
            Hidden states (see :meth:`normalize_layers`).

        Returns
        -------
        torch.Tensor
            ``(batch, time, len(layers), output_size)``.
        """
        layers = self.normalize_layers(layers)
        grad = torch.is_grad_enabled() and not self.frozen
        with torch.set_grad_enabled(grad):
            return self._encode(inputs, lens, layers)

    def _encode(self, inputs, lens, layers):
        raise NotImplementedError

    def output_lens(self, lens, num_inputs, num_frames):
        """Relative lengths of the output frames of a padded batch.

        Text encoders keep one output per token, so this returns ``lens``;
        audio encoders give the exact frame count of each utterance's valid
        samples (their :meth:`frames_of_samples`), so that downstream masks
        never count a frame computed partly from padding.

        Arguments
        ---------
        lens : torch.Tensor or None
            ``(batch,)`` relative lengths of the inputs.
        num_inputs : int
            Padded input length (samples or tokens).
        num_frames : int
            Padded output length (frames).

        Returns
        -------
        torch.Tensor or None
            ``(batch,)`` relative lengths of the outputs.
        """
        if lens is None or self.modality != "audio":
            return lens
        samples = torch.round(lens.float() * num_inputs).long()
        frames = self.frames_of_samples(samples)
        return frames.clamp(1, num_frames).float() / num_frames

    def frames_of_samples(self, samples):
        """Output frames of waveforms of ``samples`` valid samples (audio
        encoders).

        Arguments
        ---------
        samples : torch.Tensor
            ``(batch,)`` numbers of samples.

        Returns
        -------
        torch.Tensor
            ``(batch,)`` numbers of frames.
        """
        raise NotImplementedError

    def _config(self):
        """What the encoder is, besides its weights (JSON-serialisable)."""
        return repr(self)

    def _preprocessing(self):
        """Input/output processing flags that change the features."""
        return {}

    def fingerprint(self):
        """SHA-256 of everything in the encoder that decides its features.

        The class, the config (HF encoders, without where it was loaded
        from) or the module structure (others), the preprocessing flags
        (waveform normalisation, attention mask, output norm, pad id) and
        the bytes, dtype and shape of every tensor in its ``state_dict``.
        Hashing HuBERT-large + DeBERTaV3-large (~3 GB) takes seconds, so
        the result is kept: in memory until a tensor changes (PyTorch
        counts every in-place change of a tensor), and on disk for
        encoders loaded from files and not changed since, by the identity
        of those files (:mod:`.fingerprints`).

        Returns
        -------
        str
            64 hex digits.
        """
        what = "\0".join(
            [
                f"{type(self).__module__}.{type(self).__qualname__}",
                json.dumps(self._config(), sort_keys=True, default=str),
                json.dumps(self._preprocessing(), sort_keys=True, default=str),
            ]
        )
        state = self.state_dict()
        versions = tensor_versions(state)
        memo = self.__dict__.get("_fingerprint_memo")
        if memo is not None and memo[:2] == (what, versions):
            return memo[2]
        key = self._files_key(what, versions)
        store = FingerprintStore(default_store_path())
        fingerprint = store.get(key) if key else None
        if fingerprint is None:
            digest = hashlib.sha256()
            for piece in what.split("\0"):
                digest.update(piece.encode("utf-8") + b"\0")
            add_state_dict(digest, state)
            fingerprint = digest.hexdigest()
            if key:
                store.put(key, fingerprint)
        self.__dict__["_fingerprint_memo"] = (what, versions, fingerprint)
        return fingerprint

    def _files_key(self, what, versions):
        """The fingerprint store's key when the weights are exactly those
        of the files they were loaded from (None: not known to be)."""
        return None


def tensor_versions(state_dict):
    """Which tensors a state dict holds, and how often each was changed.

    Arguments
    ---------
    state_dict : dict
        Name -> tensor.

    Returns
    -------
    tuple
        ``(name, storage address, version counter)`` per tensor: equal
        tuples mean that no tensor was replaced or changed in place.

    Example
    -------
    >>> layer = torch.nn.Linear(2, 2)
    >>> before = tensor_versions(layer.state_dict())
    >>> before == tensor_versions(layer.state_dict())
    True
    >>> with torch.no_grad():
    ...     _ = layer.weight.mul_(2)
    >>> before == tensor_versions(layer.state_dict())
    False
    """
    return tuple(
        (name, tensor.data_ptr(), tensor._version)
        for name, tensor in state_dict.items()
    )


def add_state_dict(digest, state_dict):
    """Adds the names, dtypes, shapes and bytes of every tensor of a
    ``state_dict`` to a hash.

    Arguments
    ---------
    digest : hashlib._Hash
        E.g. ``hashlib.sha256()``.
    state_dict : dict
        Name -> tensor.

    Example
    -------
    >>> import hashlib
    >>> a, b = hashlib.sha256(), hashlib.sha256()
    >>> add_state_dict(a, {"w": torch.zeros(2)})
    >>> add_state_dict(b, {"w": torch.zeros(2, 1)})
    >>> a.hexdigest() == b.hexdigest()
    False
    """
    for name, tensor in state_dict.items():
        tensor = tensor.detach().cpu().contiguous()
        header = f"{name}:{tensor.dtype}:{tuple(tensor.shape)}"
        digest.update(header.encode("utf-8") + b"\0")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
