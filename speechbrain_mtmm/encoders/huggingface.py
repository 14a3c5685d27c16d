"""HuggingFace encoders: any speech SSL model and any text encoder.

Built on SpeechBrain's ``HFTransformersInterface`` (config loading,
``AutoModel``, ``AutoFeatureExtractor`` and ``AutoTokenizer`` loading). Its
``_from_pretrained`` is replaced by a plain ``AutoModel.from_pretrained(
source, cache_dir=save_path)``: the original first sniffs the source for
SpeechBrain ``.ckpt`` files with ``huggingface_hub.model_info``, a network
call that fails offline unless the model sits in ``save_path`` (and
``save_path=None`` fails outright). Hub ids and local folders then go
through the same single code path. With ``pretrained=False`` the model is
built from its config alone (an exported model: its fine-tuned weights are
in the export's checkpoint). SpeechBrain's ``Wav2Vec2`` and
``TextEncoder`` lobes are not reused directly: the former normalises the
waveform and the output over the padded length (so padding changes the
features) and has only an all-or-feature-extractor freeze switch; the
latter takes raw strings and pads inside ``forward``, which does not fit a
data pipeline that tokenizes per utterance.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import os
import threading
import weakref

import torch
import torch.nn.functional as F
import transformers
from speechbrain.integrations.huggingface.huggingface import (
    HFTransformersInterface,
)
from speechbrain.utils.logger import get_logger
from transformers.models.deberta_v2.modeling_deberta_v2 import (
    make_log_bucket_position,
)

from speechbrain_mtmm.encoders.base import (
    MAX_TOKENS,
    Encoder,
    EncoderError,
    lens_to_mask,
    tensor_versions,
)
from speechbrain_mtmm.encoders.fingerprints import identity_key, weights_folder

logger = get_logger(__name__)


def unloadable(source, error):
    """The one-line reason an HF model cannot be loaded.

    Arguments
    ---------
    source : str
        The hub id or folder given.
    error : OSError
        What transformers raised.

    Returns
    -------
    str

    Example
    -------
    >>> print(unloadable("no/such-model", OSError("x\\ny")))
    ... # doctest: +ELLIPSIS
    no/such-model: cannot be loaded (x); give a local folder or a hub id...
    """
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    where = (
        "HF_HUB_OFFLINE is set: only the local HF cache is read"
        if offline
        else "is the id spelt right, and the hub reachable?"
    )
    return (
        f"{source}: cannot be loaded ({first}); give a local folder or a "
        f"hub id whose files can be fetched or are in the HF cache "
        f"({where})"
    )


class _HFEncoder(Encoder, HFTransformersInterface):
    """Shared loading and hidden-state selection for HuggingFace encoders."""

    def __init__(self, source, save_path, pretrained, **kwargs):
        self._pretrained = bool(pretrained)
        # The freeze policy is applied by _init_freeze, not by SB's bool.
        try:
            super().__init__(
                source=source, save_path=save_path, freeze=False, **kwargs
            )
        except OSError as error:
            # a typo'd hub id, no network, or offline without the files:
            # transformers' message is a paragraph, with a traceback above
            raise EncoderError(unloadable(source, error)) from None
        self.source = source
        self.output_size = int(self.model.config.hidden_size)
        self.num_layers = int(self.model.config.num_hidden_layers)
        self._loaded_versions = tensor_versions(self.state_dict())

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
        kwargs = {**self._fused_attention(), **kwargs}
        if self._pretrained:
            self.model, info = self.auto_class.from_pretrained(
                source,
                config=self.config,
                cache_dir=save_path,
                output_loading_info=True,
                **kwargs,
            )
            # the weights are the files' alone (none initialised at random):
            # their fingerprint can be kept by file identity
            self._loaded_from = weights_folder(source, save_path, kwargs, info)
        else:  # weights come from a checkpoint
            self.model = self.auto_class.from_config(self.config, **kwargs)
        if device is not None:
            self.model.to(device)

    def _fused_attention(self):
        """PyTorch's scaled-dot-product attention where the model family
        has it in transformers (HuBERT, wav2vec 2.0, data2vec-audio,
        RoBERTa, BERT); DeBERTa-v2/v3 and WavLM have no such path
        (disentangled or gated relative attention) and keep ``eager``."""
        model_class = self.auto_class._model_mapping.get(
            type(self.config), None
        )
        if getattr(model_class, "_supports_sdpa", False):
            return {"attn_implementation": "sdpa"}
        return {}

    def _run(self, layers, **inputs):
        """Runs the model; stacks the chosen hidden states on axis 2.

        transformers 5 records ``hidden_states[-1]`` before the final
        LayerNorm of pre-LN models (HuBERT-large, WavLM-large); the last
        entry is taken from ``last_hidden_state`` so that layer ``-1`` is
        the model's own output in both cases.
        """
        need_hiddens = layers != [self.num_layers]
        out = self.model(**inputs, output_hidden_states=need_hiddens)
        if not need_hiddens:
            return out.last_hidden_state.unsqueeze(2)
        hiddens = list(out.hidden_states)
        hiddens[-1] = out.last_hidden_state
        return torch.stack([hiddens[layer] for layer in layers], dim=2)

    def _files_key(self, what, versions):
        """The weights loaded from a folder, unchanged since: keyed by the
        identity of its files (:mod:`.fingerprints`)."""
        folder = self.__dict__.get("_loaded_from")
        if folder is None or versions != self._loaded_versions:
            return None
        versions_of = f"torch {torch.__version__} {transformers.__version__}"
        return identity_key(f"{what}\0{versions_of}", folder)

    def _config(self):
        # where the model was loaded from is not its content
        config = self.model.config.to_dict()
        return {k: v for k, v in config.items() if k != "_name_or_path"}


class HFAudioEncoder(_HFEncoder):
    """Any HuggingFace speech SSL model (HuBERT, WavLM, wav2vec 2.0,
    data2vec-audio) loaded with ``AutoModel``, as a waveform encoder
    (Whisper checkpoints have an encoder of their own:
    :class:`~speechbrain_mtmm.encoders.whisper.WhisperAudioEncoder`).

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
    output_norm : bool
        If True, features are layer-normalised (no affine) over the
        feature dimension, frame by frame.
    pretrained : bool
        Load the pretrained weights (False: build from the config; the
        weights then come from a checkpoint).
    apply_spec_augment : bool
        HF's built-in time masking in train mode (off: augment elsewhere).
    **kwargs
        Passed to ``from_pretrained`` (e.g. ``revision``).

    Example
    -------
    >>> from speechbrain_mtmm.testing.tiny_models import build_tiny_hubert
    >>> folder = build_tiny_hubert(getfixture("tmpdir") / "hubert")
    >>> encoder = HFAudioEncoder(folder, freeze="paper")
    >>> encoder.modality, encoder.output_size
    ('audio', 32)
    >>> wav = torch.randn(2, 16000)
    >>> encoder(wav, torch.tensor([1.0, 0.5])).shape
    torch.Size([2, 49, 32])
    >>> encoder.hidden_states(wav, None, [0, -1]).shape  # 2 of 3 layers
    torch.Size([2, 49, 2, 32])
    """

    modality = "audio"

    def __init__(
        self,
        source,
        save_path=None,
        freeze="paper",
        output_norm=False,
        pretrained=True,
        apply_spec_augment=False,
        **kwargs,
    ):
        super().__init__(source, save_path, pretrained, **kwargs)
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
            raise EncoderError(
                f"freeze='paper': {type(self.model).__name__} has no CNN "
                "feature_extractor to freeze"
            )
        return modules

    def frames_of_samples(self, samples):
        """Output frames of ``samples`` valid samples (see the base class).

        Arguments
        ---------
        samples : torch.Tensor
            ``(batch,)`` numbers of samples.

        Returns
        -------
        torch.Tensor
            ``(batch,)`` numbers of frames.
        """
        return self.model._get_feat_extract_output_lengths(samples)

    def _preprocessing(self):
        return {
            "normalize_wav": self.normalize_wav,
            "use_attention_mask": self.use_attention_mask,
            "output_norm": self.output_norm,
        }

    def _encode(self, wav, lens, layers):
        mask = lens_to_mask(lens, wav.shape[1], wav.device)
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
        feats = self._run(
            layers,
            input_values=wav,
            attention_mask=mask.long() if self.use_attention_mask else None,
        )
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
    max_length : int
        ``tokenize`` truncates to this many ids, special tokens included.
    pretrained : bool
        Load the pretrained weights (False: build from the config; the
        weights then come from a checkpoint).
    **kwargs
        Passed to ``from_pretrained`` (e.g. ``revision``).

    Example
    -------
    >>> from speechbrain_mtmm.testing.tiny_models import build_tiny_deberta_v2
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
        max_length=MAX_TOKENS,
        pretrained=True,
        **kwargs,
    ):
        super().__init__(source, save_path, pretrained, **kwargs)
        self.max_length = max_length
        self.load_tokenizer(source, cache_dir=save_path)
        self.tokens = HFTokenizer(self.tokenizer, max_length)
        self.pad_id = self.tokens.pad_id
        # DeBERTa-v2/v3: relative positions only as far as the batch needs
        # (False for an ONNX export, whose lengths are not known)
        self.narrow_positions = True
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
        return self.tokens.tokenize(text)

    def visible_text(self, text):
        """The part of ``text`` the model sees (``max_length`` tokens).

        Arguments
        ---------
        text : str
            A transcript.

        Returns
        -------
        str
            ``text`` itself when it fits, else the decoded kept tokens.
        """
        return self.tokens.visible_text(text)

    def _preprocessing(self):
        return {"pad_id": self.pad_id}

    def _encode(self, tokens, lens, layers):
        mask = lens_to_mask(lens, tokens.shape[1], tokens.device)
        mask = mask.expand(tokens.shape[0], -1)
        tokens = tokens.masked_fill(~mask, self.pad_id)
        span = tokens.shape[1] if self.narrow_positions else None
        with narrow_relative_positions(self.model, span):
            return self._run(
                layers, input_ids=tokens, attention_mask=mask.long()
            )


class HFTokenizer:
    """A HF tokenizer as the model uses it: truncated ids and the text
    they cover. Shared by :class:`HFTextEncoder` and the ONNX backend,
    which has the tokenizer but no PyTorch model.

    Arguments
    ---------
    tokenizer : transformers.PreTrainedTokenizerBase
        The tokenizer.
    max_length : int
        Tokens kept per transcript, special tokens included.
    """

    def __init__(self, tokenizer, max_length=MAX_TOKENS):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        pad_id = tokenizer.pad_token_id
        self.pad_id = 0 if pad_id is None else int(pad_id)

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

    def visible_text(self, text):
        """The part of ``text`` the model sees (``max_length`` tokens).

        Arguments
        ---------
        text : str
            A transcript.

        Returns
        -------
        str
            ``text`` itself when it fits, else the decoded kept tokens.
        """
        full = self.tokenizer(text)["input_ids"]
        if len(full) <= self.max_length:
            return text
        kept = self.tokenize(text).tolist()
        return self.tokenizer.decode(kept, skip_special_tokens=True).strip()


_NARROWING_LOCK = threading.Lock()
_MODEL_LOCKS = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def narrow_relative_positions(model, length):
    """DeBERTa-v2/v3 attends over the relative positions a batch of
    ``length`` tokens can have, not over the whole position table.

    Every layer of DeBERTa-v2/v3 projects its whole relative-position table
    (``2 * position_buckets`` rows, 512 for DeBERTaV3) with the query and
    key weights, whatever the input's length; for a 20-token transcript
    that is 25 times the rows of the tokens themselves, about three
    quarters of the model's time on a CPU (DeBERTaV3-large, 20 tokens, 2
    threads: 3.4 s -> 0.9 s). Positions farther apart than ``length - 1``
    (after DeBERTa's log bucketing) are never looked up, so the table is
    cut to the rows centred on position 0 that can be, and the layers'
    span set to match: the same lookups, hence the same outputs (to float
    rounding) and, in eval mode, the same gradients (in training the
    dropout on the table draws over the rows used). Other models are left
    untouched, as is everything when ``length`` is None. The model is
    changed while a batch runs, so batches of one model from several
    threads take turns. This reaches into transformers'
    DeBERTa-v2 internals (``encoder.get_rel_embedding``, the attentions'
    ``pos_ebd_size``); a model that lacks them runs unchanged.

    Arguments
    ---------
    model : transformers.PreTrainedModel
        The text model.
    length : int or None
        Tokens per sequence of the batch (None: no narrowing).

    Yields
    ------
    int or None
        The span used (None: unchanged).
    """
    encoder = getattr(model, "encoder", None)
    layers = getattr(encoder, "layer", [])
    attentions = [
        getattr(getattr(layer, "attention", None), "self", None)
        for layer in layers
    ]
    if (
        length is None
        or not getattr(encoder, "relative_attention", False)
        or not hasattr(encoder, "get_rel_embedding")
        or not attentions
        or not all(hasattr(a, "pos_ebd_size") for a in attentions)
    ):
        yield None
        return
    # the table's own size: the attentions' span may be narrowed by another
    # thread right now
    full = encoder.rel_embeddings.num_embeddings // 2
    buckets = getattr(encoder, "position_buckets", -1)
    farthest = torch.tensor(max(int(length) - 1, 0))
    if buckets > 0:
        farthest = make_log_bucket_position(
            farthest, buckets, encoder.max_relative_positions
        )
    span = min(full, int(farthest.abs()) + 1)
    if span >= full:
        yield None
        return
    # the narrowing changes the shared model: one batch at a time per model
    with _NARROWING_LOCK:
        lock = _MODEL_LOCKS.setdefault(model, threading.Lock())
    with lock:
        table = encoder.get_rel_embedding
        encoder.get_rel_embedding = lambda: table()[full - span : full + span]
        for attention in attentions:
            attention.pos_ebd_size = span
        try:
            yield span
        finally:
            del encoder.get_rel_embedding
            for attention in attentions:
                attention.pos_ebd_size = full
