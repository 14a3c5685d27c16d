"""Tiny, randomly initialised HuggingFace models for tests and demos.

Nothing here touches the network. Each builder writes a small model, with
the same architecture family as the large pretrained encoders used in the
paper (HuBERT-large, DeBERTaV3-large, ...), plus its feature-extractor or
tokenizer files, into a folder with ``save_pretrained``. The folder then
loads back with ``from_pretrained(folder)`` exactly like a hub id, so the
encoders in :mod:`speechbrain_mtmm.encoders` take it as ``source``. Given
the published sizes, the same builders make paper-size models with random
weights (``benchmarks/``).

Every builder is deterministic: it seeds torch before initialising the
weights, and the tokenizers are trained single-threaded on the given texts.
The weights are random, so the features carry no meaning; these models only
exercise the code paths.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import io
import json
import os
from pathlib import Path

import torch

# A few lines in the register of IEMOCAP transcripts; used when no texts
# are given to the tokenizer builders.
DEFAULT_TEXTS = [
    "Excuse me.",
    "Do you have your forms?",
    "Yeah.",
    "Let me see them.",
    "Is there a problem?",
    "Who told you to get in this line?",
    "You did.",
    "I'm sorry, I don't know what you are talking about.",
    "Okay, that's fine. I will wait over there.",
    "Oh my God, this is amazing! I got the job!",
    "I can't believe you would do that to me.",
    "Why are you so angry? Calm down, please.",
    "I miss him so much, it's been a hard year.",
    "What do you want from me?",
    "That's wonderful news, congratulations!",
]


# The tiny speech SSL layout: a 3-layer CNN with the real models' total
# stride of 320 samples (50 frames/s at 16 kHz), a 2-layer transformer
TINY_SPEECH_SSL = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (32, 32, 32),
    "conv_kernel": (10, 8, 8),
    "conv_stride": (5, 8, 8),
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 4,
    "vocab_size": 32,
}


def build_tiny_speech_ssl(
    folder, family="hubert", feat_extract_norm="layer", seed=0, **config
):
    """Writes a random HuBERT, WavLM, wav2vec 2.0 or data2vec-audio and
    its feature extractor config to ``folder`` (tiny unless ``config`` says
    otherwise).

    With ``feat_extract_norm="layer"`` the model has the "large" layout
    (layer-normalised CNN with bias, pre-LN transformer) and its feature
    extractor returns an attention mask; with ``"group"`` the "base"
    layout (group norm, post-LN, no attention mask: HF's rule). Layer drop
    is off so that train-mode outputs are reproducible.

    Arguments
    ---------
    folder : str or path-like
        Output folder (created if missing).
    family : str
        ``"hubert"``, ``"wavlm"``, ``"wav2vec2"`` or ``"data2vec-audio"``.
    feat_extract_norm : str
        ``"layer"`` (large models) or ``"group"`` (base models).
    seed : int
        Seed for the random initialisation.
    **config
        Config values replacing those of :data:`TINY_SPEECH_SSL` (e.g.
        ``hidden_size=1024`` and ``num_hidden_layers=24`` for a
        HuBERT-large-sized model).

    Returns
    -------
    folder : str
        The folder, loadable with ``from_pretrained``.

    Example
    -------
    >>> from transformers import AutoConfig
    >>> folder = build_tiny_speech_ssl(getfixture("tmpdir") / "w", "wavlm")
    >>> AutoConfig.from_pretrained(folder).model_type
    'wavlm'
    """
    from transformers import (
        Data2VecAudioConfig,
        Data2VecAudioModel,
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WavLMConfig,
        WavLMModel,
    )

    classes = {
        "hubert": (HubertConfig, HubertModel),
        "wavlm": (WavLMConfig, WavLMModel),
        "wav2vec2": (Wav2Vec2Config, Wav2Vec2Model),
        "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioModel),
    }
    config_class, model_class = classes[family]
    layer_norm = feat_extract_norm == "layer"
    kwargs = dict(
        TINY_SPEECH_SSL,
        conv_bias=layer_norm,
        feat_extract_norm=feat_extract_norm,
        do_stable_layer_norm=layer_norm,
        layerdrop=0.0,
    )
    if family == "wavlm":
        kwargs.update(num_buckets=32, max_bucket_distance=100)
    if family == "data2vec-audio":  # layer-norm CNN and post-LN only
        kwargs.pop("do_stable_layer_norm")
        kwargs.pop("num_conv_pos_embedding_groups")
    kwargs.update(config)
    for key in ("conv_dim", "conv_kernel", "conv_stride"):
        kwargs[key] = tuple(kwargs[key])
    torch.manual_seed(seed)
    model_class(config_class(**kwargs)).save_pretrained(folder)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=layer_norm,
    ).save_pretrained(folder)
    return str(folder)


def build_tiny_hubert(folder, **kwargs):
    """A tiny random HuBERT (:func:`build_tiny_speech_ssl`, HuBERT-large
    layout by default).

    Arguments
    ---------
    folder : str or path-like
        Output folder.
    **kwargs
        As for :func:`build_tiny_speech_ssl`.

    Returns
    -------
    str
        The folder.

    Example
    -------
    >>> from transformers import AutoModel
    >>> folder = build_tiny_hubert(getfixture("tmpdir") / "hubert")
    >>> AutoModel.from_pretrained(folder).config.hidden_size
    32
    """
    return build_tiny_speech_ssl(folder, "hubert", **kwargs)


def build_tiny_wavlm(folder, **kwargs):
    """A tiny random WavLM (:func:`build_tiny_speech_ssl`).

    Arguments
    ---------
    folder : str or path-like
        Output folder.
    **kwargs
        As for :func:`build_tiny_speech_ssl`.

    Returns
    -------
    str
        The folder.
    """
    return build_tiny_speech_ssl(folder, "wavlm", **kwargs)


def build_tiny_wav2vec2(folder, **kwargs):
    """A tiny random wav2vec 2.0 (:func:`build_tiny_speech_ssl`; pass
    ``feat_extract_norm="group"`` for the wav2vec2-base layout).

    Arguments
    ---------
    folder : str or path-like
        Output folder.
    **kwargs
        As for :func:`build_tiny_speech_ssl`.

    Returns
    -------
    str
        The folder.
    """
    return build_tiny_speech_ssl(folder, "wav2vec2", **kwargs)


def _train_sentencepiece_vocab(texts, vocab_size):
    """Trains a unigram sentencepiece model in memory on ``texts``.

    Special pieces follow DeBERTaV3's spm.model: [PAD]=0, [CLS]=1,
    [SEP]=2, [UNK]=3, then [MASK]. Returns the (piece, score) list.
    """
    import sentencepiece as spm

    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts)),
        model_writer=proto,
        model_type="unigram",
        vocab_size=vocab_size,
        # small corpora cannot fill the vocab; take what they give
        hard_vocab_limit=False,
        # keep every character seen, so training texts never hit [UNK]
        character_coverage=1.0,
        pad_id=0,
        pad_piece="[PAD]",
        bos_id=1,
        bos_piece="[CLS]",
        eos_id=2,
        eos_piece="[SEP]",
        unk_id=3,
        unk_piece="[UNK]",
        user_defined_symbols=["[MASK]"],
        num_threads=1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    return [
        (processor.id_to_piece(i), processor.get_score(i))
        for i in range(processor.get_piece_size())
    ]


def build_tiny_deberta_v2(
    folder,
    texts=None,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    vocab_size=300,
    max_position_embeddings=128,
    seed=0,
    model_vocab_size=None,
    **config,
):
    """Writes a tiny random DeBERTa-v2 (DeBERTaV3 layout) and its tokenizer.

    The tokenizer is a sentencepiece unigram model trained here on
    ``texts`` (``hard_vocab_limit=False``, so the vocabulary may be smaller
    than ``vocab_size``), wrapped as a ``DebertaV2Tokenizer``. The model
    config's ``vocab_size`` is the tokenizer's length. The attention
    settings follow DeBERTaV3 (relative attention, c2p+p2c, log buckets,
    no absolute position input).

    Arguments
    ---------
    folder : str or path-like
        Output folder (created if missing).
    texts : list of str, optional
        Corpus for the tokenizer; a few IEMOCAP-like lines when None.
    hidden_size : int
        Transformer width.
    num_layers : int
        Number of transformer layers.
    num_heads : int
        Attention heads (must divide ``hidden_size``).
    intermediate_size : int
        Feed-forward width.
    vocab_size : int
        Requested (upper bound of the) sentencepiece vocabulary size.
    max_position_embeddings : int
        Maximum sequence length.
    seed : int
        Seed for the random initialisation.
    model_vocab_size : int, optional
        The model's vocabulary (default: the tokenizer's length); e.g.
        DeBERTaV3's 128100 with a small tokenizer whose ids stay below it.
    **config
        More ``DebertaV2Config`` values, winning over the above (e.g.
        ``position_buckets=256`` for a DeBERTaV3-large-sized model).

    Returns
    -------
    folder : str
        The folder, loadable with ``from_pretrained``.

    Example
    -------
    >>> from transformers import AutoConfig, AutoTokenizer
    >>> folder = build_tiny_deberta_v2(getfixture("tmpdir") / "deberta")
    >>> tokenizer = AutoTokenizer.from_pretrained(folder)
    >>> len(tokenizer) == AutoConfig.from_pretrained(folder).vocab_size
    True
    >>> tokenizer.decode(tokenizer("Yeah.").input_ids)
    '[CLS] Yeah.[SEP]'
    """
    from transformers import DebertaV2Config, DebertaV2Model, DebertaV2Tokenizer

    os.makedirs(folder, exist_ok=True)
    texts = DEFAULT_TEXTS if texts is None else texts
    vocab = _train_sentencepiece_vocab(texts, vocab_size)
    tokenizer = DebertaV2Tokenizer(
        vocab=vocab, unk_id=3, model_max_length=max_position_embeddings
    )
    tokenizer.save_pretrained(folder)

    kwargs = dict(
        vocab_size=model_vocab_size or len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=0,
        relative_attention=True,
        max_relative_positions=-1,
        position_buckets=32,
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        pad_token_id=tokenizer.pad_token_id,
    )
    kwargs.update(config)
    torch.manual_seed(seed)
    DebertaV2Model(DebertaV2Config(**kwargs)).save_pretrained(folder)
    return str(folder)


def build_tiny_roberta(
    folder,
    texts=None,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    intermediate_size=64,
    vocab_size=400,
    max_position_embeddings=130,
    seed=0,
):
    """Writes a tiny random RoBERTa and its byte-level BPE tokenizer.

    The tokenizer is trained here on ``texts`` with the ``tokenizers``
    library (RoBERTa's special tokens: <s>=0, <pad>=1, </s>=2, <unk>=3,
    <mask>=4) and saved as a ``RobertaTokenizer`` (the fast one; in
    transformers 5 ``RobertaTokenizerFast`` is the same class). The model
    config's ``vocab_size`` is the tokenizer's length.

    Arguments
    ---------
    folder : str or path-like
        Output folder (created if missing).
    texts : list of str, optional
        Corpus for the tokenizer; a few IEMOCAP-like lines when None.
    hidden_size : int
        Transformer width.
    num_layers : int
        Number of transformer layers.
    num_heads : int
        Attention heads (must divide ``hidden_size``).
    intermediate_size : int
        Feed-forward width.
    vocab_size : int
        BPE vocabulary size (256 byte symbols + specials + merges).
    max_position_embeddings : int
        Position table size; RoBERTa offsets positions by pad_id + 1 = 2,
        so the longest input is ``max_position_embeddings - 2``.
    seed : int
        Seed for the random initialisation.

    Returns
    -------
    folder : str
        The folder, loadable with ``from_pretrained``.

    Example
    -------
    >>> from transformers import AutoTokenizer
    >>> folder = build_tiny_roberta(getfixture("tmpdir") / "roberta")
    >>> tokenizer = AutoTokenizer.from_pretrained(folder)
    >>> tokenizer.decode(tokenizer("Yeah.").input_ids)
    '<s>Yeah.</s>'
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

    os.makedirs(folder, exist_ok=True)
    texts = DEFAULT_TEXTS if texts is None else texts
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        list(texts),
        vocab_size=vocab_size,
        min_frequency=1,
        show_progress=False,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    trained = json.loads(bpe.to_str())["model"]
    merges = [
        tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
        for m in trained["merges"]
    ]
    tokenizer = RobertaTokenizer(
        vocab=trained["vocab"],
        merges=merges,
        model_max_length=max_position_embeddings - 2,
    )
    tokenizer.save_pretrained(folder)

    config = RobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        type_vocab_size=1,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    RobertaModel(config).save_pretrained(folder)
    return str(folder)


#: The tiny Whisper encoder layout: Whisper's front end (80 mel bins, 30 s
#: windows of 1500 frames) with a 2-layer, 16-wide transformer
TINY_WHISPER = {
    "d_model": 16,
    "encoder_layers": 2,
    "encoder_attention_heads": 2,
    "encoder_ffn_dim": 32,
    "decoder_layers": 1,
    "decoder_attention_heads": 2,
    "decoder_ffn_dim": 32,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 32,
    "vocab_size": 64,
    "pad_token_id": 1,
    "bos_token_id": 1,
    "eos_token_id": 1,
    "decoder_start_token_id": 2,
    "suppress_tokens": [],
    "begin_suppress_tokens": [],
}
#: Whisper-large-v3's encoder dimensions (its decoder kept tiny: only the
#: encoder is used), for random-weight benchmarks
WHISPER_LARGE_V3 = {
    "d_model": 1280,
    "encoder_layers": 32,
    "encoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "num_mel_bins": 128,
}
#: Whisper-small's encoder dimensions
WHISPER_SMALL = {
    "d_model": 768,
    "encoder_layers": 12,
    "encoder_attention_heads": 12,
    "encoder_ffn_dim": 3072,
    "num_mel_bins": 80,
}


def build_tiny_whisper_encoder(folder, seed=0, weights=True, **config):
    """Writes a random ``WhisperModel`` and its ``WhisperFeatureExtractor``
    to ``folder`` (tiny unless ``config`` says otherwise), for
    :class:`~speechbrain_mtmm.encoders.whisper.WhisperAudioEncoder`.

    Arguments
    ---------
    folder : str or path-like
        Output folder (created if missing).
    seed : int
        Seed for the random initialisation.
    weights : bool
        False: only the config and the feature extractor (a model to build
        with ``pretrained=False``, e.g. Whisper-large-v3's size with
        :data:`WHISPER_LARGE_V3`, without writing gigabytes).
    **config
        Config values replacing those of :data:`TINY_WHISPER`.

    Returns
    -------
    str
        The folder, loadable with ``from_pretrained``.

    Example
    -------
    >>> from transformers import AutoConfig
    >>> folder = build_tiny_whisper_encoder(getfixture("tmpdir") / "w")
    >>> config = AutoConfig.from_pretrained(folder)
    >>> config.model_type, config.d_model, config.encoder_layers
    ('whisper', 16, 2)
    """
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    config = WhisperConfig(**dict(TINY_WHISPER, **config))
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(
        folder
    )
    if weights:
        torch.manual_seed(seed)
        WhisperModel(config).save_pretrained(folder)
    else:
        config.save_pretrained(folder)
    return str(folder)


def build_tiny_whisper(folder, seed=0, languages=(), english_only=False):
    """A tiny random Whisper with a byte-level BPE tokenizer and processor,
    loadable by the ``automatic-speech-recognition`` pipeline; it writes at
    most 6 tokens.

    By default its generation config lists no languages (as old exports),
    so that it takes no ``language``; with ``languages`` it is laid out as
    the multilingual models (language and task tokens, ``lang_to_id``,
    ``task_to_id``, ``is_multilingual: true``); with ``english_only`` as
    the ``*.en`` models (``is_multilingual: false``).

    Arguments
    ---------
    folder : pathlib.Path
        Where it goes (created).
    seed : int
        Of the random weights.
    languages : sequence of str
        Language codes (``en``, ``de``) it knows.
    english_only : bool
        Mark it English-only.

    Returns
    -------
    pathlib.Path
        ``folder``.
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    folder = Path(folder)
    folder.mkdir(parents=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(DEFAULT_TEXTS, vocab_size=300, show_progress=False)
    trained = json.loads(bpe.to_str())["model"]
    (folder / "vocab.json").write_text(json.dumps(trained["vocab"]))
    merges = [
        m if isinstance(m, str) else " ".join(m) for m in trained["merges"]
    ]
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges))
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizer(
        str(folder / "vocab.json"),
        str(folder / "merges.txt"),
        unk_token=end,
        bos_token=end,
        eos_token=end,
        pad_token=end,
    )
    specials = ["<|startoftranscript|>", "<|notimestamps|>"]
    language_tokens = [f"<|{code}|>" for code in languages]
    tasks = ["<|transcribe|>", "<|translate|>"] if languages else []
    tokenizer.add_special_tokens(
        {"additional_special_tokens": specials + language_tokens + tasks}
    )
    WhisperProcessor(WhisperFeatureExtractor(), tokenizer).save_pretrained(
        folder
    )
    end_id, start_id, no_ts_id = tokenizer.convert_tokens_to_ids(
        [end, *specials]
    )
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_target_positions=32,
        pad_token_id=end_id,
        bos_token_id=end_id,
        eos_token_id=end_id,
        decoder_start_token_id=start_id,
    )
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config.max_new_tokens = 6
    model.generation_config.no_timestamps_token_id = no_ts_id
    generation = model.generation_config
    if languages:
        ids = tokenizer.convert_tokens_to_ids(language_tokens + tasks)
        generation.lang_to_id = dict(zip(language_tokens, ids))
        generation.task_to_id = {"transcribe": ids[-2], "translate": ids[-1]}
        generation.is_multilingual = True
    elif english_only:
        generation.is_multilingual = False
    if languages or english_only:
        # as the hub's models: a generation config of its own, which
        # loading keeps (not one derived again from the model config)
        generation._from_model_config = False
    model.save_pretrained(folder)
    return folder


def build_tiny_wav2vec2_ctc(folder, seed=0, feat_extract_norm="group"):
    """A tiny random wav2vec 2.0 CTC model with a character tokenizer and
    processor, loadable by the ``automatic-speech-recognition`` pipeline.

    The default ``"group"`` layout is wav2vec2-base's: its feature
    extractor gives no attention mask, so padding changes what it hears.

    Arguments
    ---------
    folder : str or path-like
        Where it goes (created).
    seed : int
        Of the random weights.
    feat_extract_norm : str
        ``"group"`` (base layout, no attention mask) or ``"layer"``.

    Returns
    -------
    pathlib.Path
        ``folder``.

    Example
    -------
    >>> from transformers import AutoConfig
    >>> folder = build_tiny_wav2vec2_ctc(getfixture("tmp_path") / "ctc")
    >>> AutoConfig.from_pretrained(folder).architectures
    ['Wav2Vec2ForCTC']
    """
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder = Path(folder)
    folder.mkdir(parents=True)
    letters = "abcdefghijklmnopqrstuvwxyz'"
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2}
    vocab.update({c: i + len(vocab) for i, c in enumerate(letters)})
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(
        str(folder / "vocab.json"),
        unk_token="<unk>",
        pad_token="<pad>",
        word_delimiter_token="|",
    )
    layer_norm = feat_extract_norm == "layer"
    extractor = Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=layer_norm,
    )
    Wav2Vec2Processor(
        feature_extractor=extractor, tokenizer=tokenizer
    ).save_pretrained(folder)
    config = Wav2Vec2Config(
        **dict(TINY_SPEECH_SSL, vocab_size=len(vocab)),
        pad_token_id=0,
        feat_extract_norm=feat_extract_norm,
        conv_bias=layer_norm,
        do_stable_layer_norm=layer_norm,
        layerdrop=0.0,
    )
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    return folder
