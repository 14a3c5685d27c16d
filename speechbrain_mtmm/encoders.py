"""Audio and text encoders with one interface, for multi-modal emotion models.

Ispas et al. (ICMI 2023) encode the audio with HuBERT-large and the gold
transcript with DeBERTaV3-large, freeze the CNN feature extractor and the
embedding layer, and fine-tune the transformer layers; Random Modality
Masking freezes a whole encoder for the epochs in which its modality is
masked. Every encoder here therefore offers the same small interface:

* ``modality``: ``"audio"`` or ``"text"``;
* ``output_size``: feature width (read from the loaded config for the
  HuggingFace encoders, never hard-coded);
* ``forward(inputs, lens)`` -> ``(batch, time, output_size)``, where
  ``lens`` are SpeechBrain relative lengths in [0, 1] and padding is masked
  so that it does not change the features of the valid frames;
* ``set_trainable(flag)``: ``False`` freezes the whole encoder (no
  gradients, eval mode, forward under ``torch.no_grad``); ``True`` restores
  the configured ``freeze`` policy;
* text encoders also have ``tokenize(text) -> LongTensor`` for use inside a
  SpeechBrain data pipeline. Batches are padded with 0 by the data loader;
  the attention mask is built from ``lens``, never from the token ids.

Freeze policies (``freeze=``): ``"paper"`` freezes the CNN feature
extractor + feature projection (audio) or the embedding layer (text) and
trains the transformer layers; ``"frozen"`` freezes everything;
``"trainable"`` trains everything. Frozen parts are kept in eval mode even
when the surrounding model is put in train mode.

HuggingFace encoders build on SpeechBrain's ``HFTransformersInterface``
(config loading, ``AutoModel``, ``AutoFeatureExtractor`` and
``AutoTokenizer`` loading). Its ``_from_pretrained`` is replaced by a plain
``AutoModel.from_pretrained(source, cache_dir=save_path)``: the original
first sniffs the source for SpeechBrain ``.ckpt`` files with
``huggingface_hub.model_info``, a network call that fails offline unless
the model sits in ``save_path`` (and ``save_path=None`` fails outright).
Hub ids and local folders then go through the same single code path.
SpeechBrain's ``Wav2Vec2`` and ``TextEncoder`` lobes are not reused
directly: the former normalises the waveform and the output over the
padded length (so padding changes the features) and has only an
all-or-feature-extractor freeze switch; the latter takes raw strings and
pads inside ``forward``, which does not fit a data pipeline that tokenizes
per utterance.

``build_audio_encoder`` / ``build_text_encoder`` pick the class from a
``source`` string ("fbank" / "hashing" select the light pair) for the YAML
presets in ``hparams/encoders/``.

Authors
 * speechbrain-mtmm contributors 2024
"""

import re
import zlib

import torch
import torch.nn.functional as F
from speechbrain.dataio.dataio import length_to_mask
from speechbrain.integrations.huggingface.huggingface import (
    HFTransformersInterface,
)
from speechbrain.lobes.features import Fbank
from speechbrain.utils.logger import get_logger
from torch import nn

logger = get_logger(__name__)

FREEZE_POLICIES = ("paper", "frozen", "trainable")


def _lens_to_mask(lens, max_len, device):
    """Boolean mask ``(batch, max_len)``, True on valid positions.

    ``lens`` are relative lengths (None = all full). Unlike
    ``make_padding_masks`` the mask always has ``max_len`` columns, even if
    no item in the batch reaches the padded length.
    """
    if lens is None:
        return torch.ones(1, max_len, dtype=torch.bool, device=device)
    abs_lens = torch.round(lens.to(device).float() * max_len)
    return length_to_mask(abs_lens, max_len=max_len, dtype=torch.bool)


class _FreezableEncoder(nn.Module):
    """Freeze policy + ``set_trainable`` shared by all encoders.

    Subclasses call ``_init_freeze(policy)`` at the end of ``__init__`` and
    implement ``_policy_frozen_modules()`` (the modules frozen by the
    ``"paper"`` policy) and ``_encode(inputs, lens)``.
    """

    modality = None

    def _init_freeze(self, freeze):
        if freeze not in FREEZE_POLICIES:
            raise ValueError(
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

    def output_lens(self, lens, num_inputs, num_frames):
        """Relative lengths of the output frames of a padded batch.

        Text encoders keep one output per token, so this returns ``lens``;
        audio encoders override it with the exact frame count of each
        utterance's valid samples, so that downstream masks never count a
        frame computed partly from padding.

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
        return lens

    def forward(self, inputs, lens=None):
        """Encodes a padded batch.

        Arguments
        ---------
        inputs : torch.Tensor
            ``(batch, samples)`` waveforms for audio encoders,
            ``(batch, tokens)`` token ids for text encoders, zero-padded.
        lens : torch.Tensor, optional
            ``(batch,)`` relative lengths in [0, 1]; None means all full.

        Returns
        -------
        torch.Tensor
            ``(batch, time, output_size)`` features (or ``(layers, batch,
            time, output_size)`` for ``output_all_hiddens=True``).
        """
        grad = torch.is_grad_enabled() and not self.frozen
        with torch.set_grad_enabled(grad):
            return self._encode(inputs, lens)

    def _encode(self, inputs, lens):
        raise NotImplementedError


class _HFEncoder(_FreezableEncoder, HFTransformersInterface):
    """Shared loading and layer selection for HuggingFace encoders."""

    def __init__(self, source, save_path, layer, output_all_hiddens, **kw):
        # The freeze policy is applied by _init_freeze, not by SB's bool.
        super().__init__(source=source, save_path=save_path, freeze=False, **kw)
        self.source = source
        self.output_size = int(self.model.config.hidden_size)
        num_layers = int(self.model.config.num_hidden_layers)
        if not -(num_layers + 1) <= layer <= num_layers:
            raise ValueError(
                f"layer {layer} out of range for {num_layers} layers "
                f"(hidden_states has {num_layers + 1} entries)"
            )
        self.layer = layer % (num_layers + 1)
        self.num_layers = num_layers
        self.output_all_hiddens = output_all_hiddens

    def _from_pretrained(
        self, source, save_path, cache_dir, device=None, **kwargs
    ):
        """One code path for hub ids and local folders (no hub sniffing).

        Arguments
        ---------
        source : str
            Hub id or local folder.
        save_path : str or None
            HF cache folder for hub downloads (None: default HF cache).
        cache_dir : str
            Unused (kept for the parent's signature).
        device : str, optional
            Device to move the model to.
        **kwargs
            Passed to ``from_pretrained``.
        """
        self.model = self.auto_class.from_pretrained(
            source, config=self.config, cache_dir=save_path, **kwargs
        )
        if device is not None:
            self.model.to(device)

    def _select(self, out):
        """Picks the configured layer(s) from a HF model output.

        transformers 5 records ``hidden_states[-1]`` before the final
        LayerNorm of pre-LN models (HuBERT-large, WavLM-large); the last
        entry is replaced by ``last_hidden_state`` so that ``layer=-1`` is
        the model's own output in both cases.
        """
        if self.output_all_hiddens:
            hiddens = list(out.hidden_states)
            hiddens[-1] = out.last_hidden_state
            return torch.stack(hiddens, dim=0)
        if self.layer == self.num_layers:
            return out.last_hidden_state
        return out.hidden_states[self.layer]

    @property
    def _need_hiddens(self):
        return self.output_all_hiddens or self.layer != self.num_layers


class HFAudioEncoder(_HFEncoder):
    """Any HuggingFace speech SSL model (HuBERT, WavLM, wav2vec 2.0,
    data2vec-audio) loaded with ``AutoModel``, as a waveform encoder.

    The waveform is standardised per utterance over its valid samples when
    the model's feature-extractor config says ``do_normalize`` (padding is
    excluded from the statistics and set to 0). The attention mask is
    passed to the model when its feature-extractor config has
    ``return_attention_mask`` (models with ``feat_extract_norm="layer"``,
    e.g. HuBERT-large); group-norm models (wav2vec2-base) must not get one
    (HF's rule), so for them padding does change the features slightly.

    The relative lengths of the output frames equal those of the input:
    the valid frame count of an utterance is the conv stack's output length
    for its valid samples, which equals ``round(lens * frames)`` up to one
    frame of rounding.

    Arguments
    ---------
    source : str
        HF hub id (e.g. "facebook/hubert-large-ll60k") or local folder.
    save_path : str, optional
        HF cache folder for hub downloads (None: default HF cache).
    freeze : str
        "paper": CNN feature extractor + feature projection frozen,
        transformer trainable; "frozen": everything frozen;
        "trainable": everything trainable.
    layer : int
        Index into ``hidden_states`` (0 = input of the first transformer
        layer, -1 = last layer, i.e. ``last_hidden_state``).
    output_norm : bool
        If True, features are layer-normalised (no affine) over the
        feature dimension, frame by frame.
    output_all_hiddens : bool
        If True, ``forward`` returns all hidden states stacked,
        ``(num_layers + 1, batch, time, output_size)``.
    apply_spec_augment : bool
        HF's built-in time masking in train mode (off: augment elsewhere).
    **kwargs
        Passed to ``from_pretrained`` (e.g. ``revision``).

    Example
    -------
    >>> from speechbrain_mtmm.tiny_models import build_tiny_hubert
    >>> folder = build_tiny_hubert(getfixture("tmpdir") / "hubert")
    >>> encoder = HFAudioEncoder(folder, freeze="paper")
    >>> encoder.modality, encoder.output_size
    ('audio', 32)
    >>> wav = torch.randn(2, 16000)
    >>> encoder(wav, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 49, 32])
    """

    modality = "audio"

    def __init__(
        self,
        source,
        save_path=None,
        freeze="paper",
        layer=-1,
        output_norm=False,
        output_all_hiddens=False,
        apply_spec_augment=False,
        **kwargs,
    ):
        super().__init__(source, save_path, layer, output_all_hiddens, **kwargs)
        self.model.config.apply_spec_augment = apply_spec_augment
        self.output_norm = output_norm
        try:
            self.load_feature_extractor(source, cache_dir=save_path)
            self.normalize_wav = bool(self.feature_extractor.do_normalize)
            self.use_attention_mask = bool(
                self.feature_extractor.return_attention_mask
            )
        except OSError:
            layer_norm = getattr(self.config, "feat_extract_norm", "layer")
            self.normalize_wav = True
            self.use_attention_mask = layer_norm == "layer"
            logger.warning(
                f"No feature-extractor config in {source}: normalising "
                f"the waveform, attention mask={self.use_attention_mask}."
            )
        self._init_freeze(freeze)

    def _policy_frozen_modules(self):
        modules = [
            getattr(self.model, name)
            for name in ("feature_extractor", "feature_projection")
            if hasattr(self.model, name)
        ]
        if not modules:
            raise ValueError(
                f"freeze='paper': {type(self.model).__name__} has no CNN "
                "feature_extractor to freeze"
            )
        return modules

    def output_lens(self, lens, num_inputs, num_frames):
        """Exact relative lengths of the output frames (see the base class).

        Arguments
        ---------
        lens : torch.Tensor or None
            ``(batch,)`` relative lengths of the waveforms.
        num_inputs : int
            Padded number of samples.
        num_frames : int
            Padded number of output frames.

        Returns
        -------
        torch.Tensor or None
            ``(batch,)`` relative lengths of the frames.
        """
        if lens is None:
            return None
        samples = torch.round(lens.float() * num_inputs).long()
        frames = self.model._get_feat_extract_output_lengths(samples)
        return frames.clamp(1, num_frames).float() / num_frames

    def _encode(self, wav, lens):
        mask = _lens_to_mask(lens, wav.shape[1], wav.device)
        mask = mask.expand(wav.shape[0], -1)
        wav = wav.masked_fill(~mask, 0.0)
        if self.normalize_wav:
            count = mask.sum(1, keepdim=True).clamp(min=1)
            mean = wav.sum(1, keepdim=True) / count
            var = ((wav - mean) ** 2).masked_fill(~mask, 0.0).sum(
                1, keepdim=True
            ) / count
            # same formula as Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
            wav = ((wav - mean) / torch.sqrt(var + 1e-7)).masked_fill(
                ~mask, 0.0
            )
        out = self.model(
            wav,
            attention_mask=mask.long() if self.use_attention_mask else None,
            output_hidden_states=self._need_hiddens,
        )
        feats = self._select(out)
        if self.output_norm:
            feats = F.layer_norm(feats, feats.shape[-1:])
        return feats


class HFTextEncoder(_HFEncoder):
    """Any HuggingFace text encoder (DeBERTaV3 / DeBERTa-v2, RoBERTa,
    BERT) loaded with ``AutoModel``, with its ``AutoTokenizer``.

    Token ids at padded positions are replaced by the tokenizer's pad id
    before the model sees them (the data loader pads with 0, which is a
    real token for RoBERTa), and the attention mask comes from ``lens``.

    Arguments
    ---------
    source : str
        HF hub id (e.g. "microsoft/deberta-v3-large") or local folder.
    save_path : str, optional
        HF cache folder for hub downloads (None: default HF cache).
    freeze : str
        "paper": embedding layer frozen, transformer trainable;
        "frozen": everything frozen; "trainable": everything trainable.
    layer : int
        Index into ``hidden_states`` (0 = embedding output, -1 = last).
    max_length : int
        ``tokenize`` truncates to this many ids, special tokens included.
    output_all_hiddens : bool
        If True, ``forward`` returns all hidden states stacked,
        ``(num_layers + 1, batch, time, output_size)``.
    **kwargs
        Passed to ``from_pretrained`` (e.g. ``revision``).

    Example
    -------
    >>> from speechbrain_mtmm.tiny_models import build_tiny_deberta_v2
    >>> folder = build_tiny_deberta_v2(getfixture("tmpdir") / "deberta")
    >>> encoder = HFTextEncoder(folder, freeze="paper")
    >>> encoder.modality, encoder.output_size
    ('text', 32)
    >>> ids = encoder.tokenize("Excuse me.")
    >>> ids.dtype, ids[0].item() == encoder.tokenizer.cls_token_id
    (torch.int64, True)
    >>> batch = torch.zeros(2, 12, dtype=torch.long)
    >>> batch[0, : len(ids)] = ids
    >>> batch[1, : len(ids)] = ids
    >>> lens = torch.tensor([len(ids) / 12, 1.0])
    >>> encoder(batch, lens).shape
    torch.Size([2, 12, 32])
    """

    modality = "text"

    def __init__(
        self,
        source,
        save_path=None,
        freeze="paper",
        layer=-1,
        max_length=128,
        output_all_hiddens=False,
        **kwargs,
    ):
        super().__init__(source, save_path, layer, output_all_hiddens, **kwargs)
        self.max_length = max_length
        self.load_tokenizer(source, cache_dir=save_path)
        pad_id = self.tokenizer.pad_token_id
        self.pad_id = 0 if pad_id is None else int(pad_id)
        self._init_freeze(freeze)

    def _policy_frozen_modules(self):
        embeddings = getattr(self.model, "embeddings", None)
        if embeddings is None:
            embeddings = self.model.get_input_embeddings()
        return [embeddings]

    def tokenize(self, text):
        """Token ids of one text, special tokens included, truncated.

        Arguments
        ---------
        text : str
            The transcript.

        Returns
        -------
        torch.LongTensor
            1-D ids, at most ``max_length`` long.
        """
        ids = self.tokenizer(text, truncation=True, max_length=self.max_length)[
            "input_ids"
        ]
        return torch.tensor(ids, dtype=torch.long)

    def _encode(self, tokens, lens):
        mask = _lens_to_mask(lens, tokens.shape[1], tokens.device)
        mask = mask.expand(tokens.shape[0], -1)
        tokens = tokens.masked_fill(~mask, self.pad_id)
        out = self.model(
            input_ids=tokens,
            attention_mask=mask.long(),
            output_hidden_states=self._need_hiddens,
        )
        return self._select(out)


class FbankAudioEncoder(_FreezableEncoder):
    """Light audio encoder trained from scratch: Fbank + strided convs.

    For demos and tests without pretrained models. Log-mel filterbanks
    (``speechbrain.lobes.features.Fbank``, 10 ms hop) are standardised per
    utterance over the valid frames, then ``num_layers`` blocks of
    Conv1d (stride ``stride``, "same" padding) + GELU + LayerNorm +
    dropout reduce the frame rate. The valid length of every utterance is
    followed exactly through the STFT and the convs, and padded frames are
    zeroed before every conv, so an utterance gives the same features alone
    or padded in a batch; the relative lengths of the output equal those of
    the input up to one frame of rounding.

    Arguments
    ---------
    d_model : int
        Output feature size.
    n_mels : int
        Number of mel filters.
    sample_rate : int
        Waveform sample rate.
    num_layers : int
        Number of strided conv blocks.
    kernel_size : int
        Conv kernel size (odd).
    stride : int
        Stride of each conv block.
    dropout : float
        Dropout after each block.
    freeze : str
        "trainable" (same as "paper": nothing here is pretrained) or
        "frozen".

    Example
    -------
    >>> encoder = FbankAudioEncoder(d_model=16, n_mels=20)
    >>> encoder(torch.randn(3, 16000), torch.tensor([1.0, 0.8, 0.5])).shape
    torch.Size([3, 26, 16])
    """

    modality = "audio"

    def __init__(
        self,
        d_model=64,
        n_mels=40,
        sample_rate=16000,
        num_layers=2,
        kernel_size=5,
        stride=2,
        dropout=0.1,
        freeze="trainable",
    ):
        super().__init__()
        self.output_size = d_model
        self.stride = stride
        self.fbank = Fbank(sample_rate=sample_rate, n_mels=n_mels)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for i in range(num_layers):
            self.convs.append(
                nn.Conv1d(
                    n_mels if i == 0 else d_model,
                    d_model,
                    kernel_size,
                    stride=stride,
                    padding=kernel_size // 2,
                )
            )
            self.norms.append(nn.LayerNorm(d_model))
        self.dropout = nn.Dropout(dropout)
        self._init_freeze(freeze)

    def _encode(self, wav, lens):
        # Exact valid lengths, tracked as integers through every stage, so
        # an utterance gives the same features alone or padded in a batch.
        if lens is None:
            lens = torch.ones(wav.shape[0], device=wav.device)
        samples = torch.round(lens.to(wav.device).float() * wav.shape[1])
        wav = wav.masked_fill(
            ~length_to_mask(samples, wav.shape[1], dtype=torch.bool), 0.0
        )
        feats = self.fbank(wav)  # (B, T, n_mels), centred frames
        frames = self._stft_frames(samples).clamp(max=feats.shape[1])
        mask = length_to_mask(frames, feats.shape[1], dtype=torch.bool)
        mask = mask.unsqueeze(-1)
        count = mask.sum(1, keepdim=True).clamp(min=1)
        mean = (feats * mask).sum(1, keepdim=True) / count
        var = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / count
        x = (feats - mean) / torch.sqrt(var + 1e-5)
        for conv, norm in zip(self.convs, self.norms):
            x = x.masked_fill(~mask, 0.0)
            x = conv(x.transpose(1, 2)).transpose(1, 2)
            x = self.dropout(norm(F.gelu(x)))
            frames = self._conv_frames(conv, frames)
            mask = length_to_mask(frames, x.shape[1], dtype=torch.bool)
            mask = mask.unsqueeze(-1)
        return x

    def _stft_frames(self, samples):
        hop = self.fbank.compute_STFT.hop_length
        return torch.div(samples, hop, rounding_mode="floor") + 1

    def _conv_frames(self, conv, frames):
        pad, kernel = conv.padding[0], conv.kernel_size[0]
        return (
            torch.div(
                frames + 2 * pad - kernel, self.stride, rounding_mode="floor"
            ).clamp(min=0)
            + 1
        )

    def output_lens(self, lens, num_inputs, num_frames):
        """Exact relative lengths of the output frames (see the base class).

        Arguments
        ---------
        lens : torch.Tensor or None
            ``(batch,)`` relative lengths of the waveforms.
        num_inputs : int
            Padded number of samples.
        num_frames : int
            Padded number of output frames.

        Returns
        -------
        torch.Tensor or None
            ``(batch,)`` relative lengths of the frames.
        """
        if lens is None:
            return None
        frames = self._stft_frames(torch.round(lens.float() * num_inputs))
        for conv in self.convs:
            frames = self._conv_frames(conv, frames)
        return frames.clamp(1, num_frames).float() / num_frames


class HashingTokenizer:
    """Word tokenizer with a fixed vocabulary by hashing; needs no training.

    Text is lower-cased and split into words and punctuation marks; each
    token maps to an id with ``zlib.crc32`` (stable across processes and
    Python versions, unlike ``hash()``). Id 0 is reserved for padding; with
    ``add_bos`` id 1 starts every sequence (so an empty transcript still
    yields one token and never a zero length) and words take ids
    2..vocab_size-1, otherwise words take 1..vocab_size-1.

    Arguments
    ---------
    vocab_size : int
        Number of ids, padding included.
    max_length : int
        Maximum number of ids returned (BOS included).
    add_bos : bool
        Whether to start every sequence with id 1.

    Example
    -------
    >>> tokenizer = HashingTokenizer(vocab_size=2048)
    >>> ids = tokenizer("Hello, hello world!")
    >>> ids.tolist() == tokenizer("HELLO , hello  WORLD !").tolist()
    True
    >>> ids[0].item(), len(ids), ids[1].item() == ids[3].item()
    (1, 6, True)
    """

    _token_pattern = re.compile(r"\w+|[^\w\s]")

    def __init__(self, vocab_size=2048, max_length=128, add_bos=True):
        first = 2 if add_bos else 1
        if vocab_size <= first:
            raise ValueError(f"vocab_size must be > {first}")
        self.vocab_size = vocab_size
        self.max_length = max_length
        self.add_bos = add_bos
        self.pad_id = 0
        self.bos_id = 1 if add_bos else None
        self._first = first

    def token_id(self, token):
        """Id of one (already lower-cased) token.

        Arguments
        ---------
        token : str
            A word or punctuation mark.

        Returns
        -------
        int
        """
        bucket = zlib.crc32(token.encode("utf-8"))
        return self._first + bucket % (self.vocab_size - self._first)

    def __call__(self, text):
        """Token ids of one text.

        Arguments
        ---------
        text : str
            The transcript.

        Returns
        -------
        torch.LongTensor
            1-D ids, at most ``max_length`` long.
        """
        ids = [self.bos_id] if self.add_bos else []
        ids += [
            self.token_id(tok)
            for tok in self._token_pattern.findall(text.lower())
        ]
        return torch.tensor(ids[: self.max_length], dtype=torch.long)


class TokenEmbeddingTextEncoder(_FreezableEncoder):
    """Light text encoder trained from scratch: embeddings + small convs.

    For demos and tests without pretrained models. Ids from a
    :class:`HashingTokenizer` are embedded (id 0 = padding), then
    ``num_layers`` residual blocks of Conv1d ("same" padding, stride 1) +
    GELU + dropout + LayerNorm mix neighbouring words. Padded positions
    are zeroed before every conv, so padding does not change valid outputs.

    Arguments
    ---------
    vocab_size : int
        Size of the hashing vocabulary (padding included).
    d_model : int
        Output feature size.
    num_layers : int
        Number of residual conv blocks (0 = embeddings only).
    kernel_size : int
        Conv kernel size (odd).
    dropout : float
        Dropout in each block.
    max_length : int
        ``tokenize`` truncates to this many ids.
    freeze : str
        "trainable" (same as "paper": nothing here is pretrained) or
        "frozen".

    Example
    -------
    >>> encoder = TokenEmbeddingTextEncoder(vocab_size=512, d_model=16)
    >>> ids = encoder.tokenize("I got the job!")
    >>> batch = torch.zeros(2, 8, dtype=torch.long)
    >>> batch[0, : len(ids)] = ids
    >>> encoder(batch, torch.tensor([len(ids) / 8, 0.5])).shape
    torch.Size([2, 8, 16])
    """

    modality = "text"

    def __init__(
        self,
        vocab_size=2048,
        d_model=64,
        num_layers=1,
        kernel_size=3,
        dropout=0.1,
        max_length=128,
        freeze="trainable",
    ):
        super().__init__()
        self.output_size = d_model
        self.tokenizer = HashingTokenizer(vocab_size, max_length)
        self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=0)
        self.convs = nn.ModuleList(
            nn.Conv1d(d_model, d_model, kernel_size, padding=kernel_size // 2)
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(
            nn.LayerNorm(d_model) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self._init_freeze(freeze)

    def tokenize(self, text):
        """Token ids of one text (see :class:`HashingTokenizer`).

        Arguments
        ---------
        text : str
            The transcript.

        Returns
        -------
        torch.LongTensor
            1-D ids, at most ``max_length`` long.
        """
        return self.tokenizer(text)

    def _encode(self, tokens, lens):
        mask = _lens_to_mask(lens, tokens.shape[1], tokens.device)
        mask = mask.expand(tokens.shape[0], -1)
        x = self.embedding(tokens.masked_fill(~mask, 0))
        for conv, norm in zip(self.convs, self.norms):
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
            y = conv(x.transpose(1, 2)).transpose(1, 2)
            x = norm(x + self.dropout(F.gelu(y)))
        return x


def build_audio_encoder(
    source, freeze="paper", layer=-1, save_path=None, light_size=128
):
    """Audio encoder chosen by ``source`` (used by hparams/encoders).

    Arguments
    ---------
    source : str
        "fbank" for :class:`FbankAudioEncoder`, otherwise a HF hub id or
        local folder for :class:`HFAudioEncoder`.
    freeze : str
        "paper", "frozen" or "trainable".
    layer : int
        Hidden state used by HF models (ignored for "fbank").
    save_path : str, optional
        HF cache folder (ignored for "fbank").
    light_size : int
        ``d_model`` of the "fbank" encoder (ignored for HF models).

    Returns
    -------
    nn.Module
        The encoder.

    Example
    -------
    >>> build_audio_encoder("fbank", light_size=16).output_size
    16
    """
    if source == "fbank":
        return FbankAudioEncoder(d_model=light_size, freeze=freeze)
    return HFAudioEncoder(
        source, save_path=save_path, freeze=freeze, layer=layer
    )


def build_text_encoder(
    source,
    freeze="paper",
    layer=-1,
    max_length=128,
    save_path=None,
    light_size=128,
):
    """Text encoder chosen by ``source`` (used by hparams/encoders).

    Arguments
    ---------
    source : str
        "hashing" for :class:`TokenEmbeddingTextEncoder`, otherwise a HF
        hub id or local folder for :class:`HFTextEncoder`.
    freeze : str
        "paper", "frozen" or "trainable".
    layer : int
        Hidden state used by HF models (ignored for "hashing").
    max_length : int
        Maximum number of token ids per transcript.
    save_path : str, optional
        HF cache folder (ignored for "hashing").
    light_size : int
        ``d_model`` of the "hashing" encoder (ignored for HF models).

    Returns
    -------
    nn.Module
        The encoder.

    Example
    -------
    >>> build_text_encoder("hashing", light_size=16).output_size
    16
    """
    if source == "hashing":
        return TokenEmbeddingTextEncoder(
            d_model=light_size, max_length=max_length, freeze=freeze
        )
    return HFTextEncoder(
        source,
        save_path=save_path,
        freeze=freeze,
        layer=layer,
        max_length=max_length,
    )
