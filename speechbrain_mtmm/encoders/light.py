"""Light encoders trained from scratch, for demos and tests.

A filterbank + strided-conv audio encoder and a hashed-word-embedding text
encoder: no pretrained weights, no download, a few thousand parameters.
They offer the interface of :class:`~speechbrain_mtmm.encoders.base.Encoder`
(selected by the sources ``"fbank"`` and ``"hashing"``); having no hidden
states to choose from, they take only the layer ``-1``.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import re
import zlib

import torch
import torch.nn.functional as F
from speechbrain.dataio.dataio import length_to_mask
from speechbrain.lobes.features import Fbank
from torch import nn

from speechbrain_mtmm.encoders.base import MAX_TOKENS, Encoder, lens_to_mask


class FbankAudioEncoder(Encoder):
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

    def _encode(self, wav, lens, layers):
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
        return x.unsqueeze(2)

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
        frames = self._stft_frames(samples)
        for conv in self.convs:
            frames = self._conv_frames(conv, frames)
        return frames


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

    def __init__(self, vocab_size=2048, max_length=MAX_TOKENS, add_bos=True):
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


class TokenEmbeddingTextEncoder(Encoder):
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
        max_length=MAX_TOKENS,
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

    def visible_text(self, text):
        """The part of ``text`` the model sees (``max_length`` ids).

        Arguments
        ---------
        text : str
            A transcript.

        Returns
        -------
        str
            ``text`` up to the end of its last kept word.

        Example
        -------
        >>> encoder = TokenEmbeddingTextEncoder(d_model=8, max_length=3)
        >>> encoder.visible_text("Oh my God, really?")
        'Oh my'
        """
        tokenizer = self.tokenizer
        words = tokenizer.max_length - (1 if tokenizer.add_bos else 0)
        spans = list(tokenizer._token_pattern.finditer(text))
        if len(spans) <= words:
            return text
        return text[: spans[words - 1].end()] if words > 0 else ""

    def _encode(self, tokens, lens, layers):
        mask = lens_to_mask(lens, tokens.shape[1], tokens.device)
        mask = mask.expand(tokens.shape[0], -1)
        x = self.embedding(tokens.masked_fill(~mask, 0))
        for conv, norm in zip(self.convs, self.norms):
            x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
            y = conv(x.transpose(1, 2)).transpose(1, 2)
            x = norm(x + self.dropout(F.gelu(y)))
        return x.unsqueeze(2)
