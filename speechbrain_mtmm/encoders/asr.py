"""Transcripts from any transformers ASR model (Whisper, wav2vec 2.0 CTC),
for training and testing on ASR text and for audio without a transcript.

One component serves the recipe (``transcripts: asr``, through the cache of
:mod:`speechbrain_mtmm.training.transcripts`) and inference (``predict``
without ``--text``): the same model, decoding options and text, which is
used as the ASR system writes it (casing and punctuation included; the
gold transcripts have both too). Only the word error rate normalises
(:func:`~speechbrain_mtmm.training.transcripts.normalize_for_wer`).

:func:`check_asr_source` reads the model's configs only (no weights) and
refuses, in one line, a language the model cannot take: an English-only
Whisper (``*.en``: ``is_multilingual: false``) or one whose generation
config lists no languages (a tiny test model, an old export) takes none;
a multilingual one takes those of its ``lang_to_id``. A CTC model ignores
the language (a warning says so). A CTC model whose feature extractor
gives no attention mask (wav2vec 2.0 base layout: group norm) hears the
zeros of padding, so it transcribes each utterance alone, whatever
``batch_size`` says: its transcripts never depend on the other
utterances of a batch.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json

from speechbrain.utils.logger import get_logger
from transformers import AutoConfig, GenerationConfig, pipeline
from transformers.models.whisper.tokenization_whisper import (
    TO_LANGUAGE_CODE,
)

from speechbrain_mtmm.encoders.base import EncoderError, add_state_dict

logger = get_logger(__name__)

#: What to do about a language the ASR model cannot take
_NO_LANGUAGE = (
    "give --asr_language=null (asr_language: null in the YAML) to "
    "transcribe without one, or a multilingual Whisper as asr_source "
    "(e.g. openai/whisper-small)"
)


class ASRSettingError(EncoderError):
    """An ASR model or option that cannot work together; one line."""


def whisper_language_token(language, lang_to_id):
    """The language token Whisper's ``generate`` would use for
    ``language``, as transformers resolves it (a token, a name or a
    code); None when it is no language the model knows.

    Arguments
    ---------
    language : str
        ``english``, ``en`` or ``<|en|>``.
    lang_to_id : dict
        The generation config's language tokens.

    Returns
    -------
    str or None

    Example
    -------
    >>> whisper_language_token("English", {"<|en|>": 3})
    '<|en|>'
    >>> whisper_language_token("klingon", {"<|en|>": 3}) is None
    True
    """
    language = str(language).lower()
    if language in lang_to_id:
        token = language
    elif language in TO_LANGUAGE_CODE:
        token = f"<|{TO_LANGUAGE_CODE[language]}|>"
    else:
        token = f"<|{language}|>"
    return token if token in lang_to_id else None


def check_asr_language(source, config, generation_config, language):
    """Refuses a language the ASR model cannot take, in one line.

    Whisper's ``generate`` refuses a language with a ValueError from deep
    inside when the model is English-only (``is_multilingual: false``,
    the ``*.en`` models), when its generation config lists no languages
    (no ``lang_to_id``: tiny or old exports) or when the language is not
    one of them. Here the same rules are checked on the configs alone.
    CTC models take no language: it is ignored, with a warning.

    Arguments
    ---------
    source : str
        The model (named in the message).
    config : transformers.PretrainedConfig
        Its config.
    generation_config : transformers.GenerationConfig or None
        Its generation config.
    language : str or None
        ``asr_language`` (None: nothing to check).

    Raises
    ------
    ASRSettingError
        Naming ``asr_language``, the model and what to do.

    Example
    -------
    >>> from transformers import GenerationConfig, WhisperConfig
    >>> english_only = GenerationConfig(is_multilingual=False)
    >>> check_asr_language("m", WhisperConfig(), english_only, None)
    >>> try:
    ...     check_asr_language("m", WhisperConfig(), english_only, "english")
    ... except ASRSettingError as error:
    ...     print(str(error)[:61])
    asr_language=english: m is an English-only Whisper, which tak
    """
    if language is None:
        return
    if getattr(config, "model_type", None) != "whisper":
        logger.warning(
            f"asr_language={language}: {source} "
            f"({getattr(config, 'model_type', 'no model type')}) takes no "
            "language; it is ignored"
        )
        return
    multilingual = getattr(generation_config, "is_multilingual", None)
    lang_to_id = getattr(generation_config, "lang_to_id", None) or {}
    if multilingual is False:
        kind = "an English-only Whisper"
    elif not lang_to_id:
        kind = "a Whisper whose generation config lists no languages"
    else:
        kind = None
    if kind:
        raise ASRSettingError(
            f"asr_language={language}: {source} is {kind}, which takes no "
            f"language; {_NO_LANGUAGE}"
        )
    if whisper_language_token(language, lang_to_id) is None:
        known = sorted(t.strip("<|>") for t in lang_to_id)
        shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
        raise ASRSettingError(
            f"asr_language={language}: not a language {source} knows "
            f"({shown}); give one of them (a name or a code: english, en), "
            "or --asr_language=null to let it detect the language"
        )


def check_asr_source(source, language):
    """Checks an ASR model and its language from its configs alone (no
    weights loaded): before a run computes or writes anything.

    Arguments
    ---------
    source : str
        HF hub id or local folder (``asr_source``).
    language : str or None
        ``asr_language``.

    Raises
    ------
    ASRSettingError
        When the configs cannot be read, or the language does not fit
        (:func:`check_asr_language`).

    Example
    -------
    >>> try:
    ...     check_asr_source(getfixture("tmp_path"), None)
    ... except ASRSettingError as error:
    ...     print(str(error).split(": ", 1)[1][:33])
    cannot read an ASR model's config
    """
    try:
        config = AutoConfig.from_pretrained(str(source))
    except (OSError, ValueError) as error:
        first = str(error).strip().splitlines()[0] if str(error) else ""
        raise ASRSettingError(
            f"asr_source {source}: cannot read an ASR model's config "
            f"({type(error).__name__}: {first})"
        ) from None
    try:
        generation = GenerationConfig.from_pretrained(str(source))
    except (OSError, ValueError):  # none saved: the model config's
        generation = None
    check_asr_language(source, config, generation, language)


class ASRTranscriber:
    """Transcribes 16 kHz waveforms with a transformers ASR pipeline.

    Any model the ``automatic-speech-recognition`` pipeline accepts works
    (Whisper, wav2vec 2.0 CTC, ...); audio longer than 30 s is transcribed
    in 30 s chunks by the pipeline.

    Arguments
    ---------
    source : str
        HF hub id (e.g. "openai/whisper-small") or local folder.
    device : str
        Where the ASR model runs.
    language : str, optional
        Passed to Whisper's ``generate`` (None: detected).
    sample_rate : int
        Rate of the waveforms given to ``__call__``.
    batch_size : int
        Waveforms per forward pass in :meth:`transcribe`.
    generate_kwargs : dict, optional
        More decoding options for ``generate`` (e.g. ``num_beams``).

    Example
    -------
    >>> transcriber = ASRTranscriber("openai/whisper-small")  # doctest: +SKIP
    >>> transcriber(torch.zeros(16000))  # doctest: +SKIP
    ''
    """

    def __init__(
        self,
        source,
        device="cpu",
        language=None,
        sample_rate=16000,
        batch_size=8,
        generate_kwargs=None,
    ):
        try:
            self.pipeline = pipeline(
                "automatic-speech-recognition",
                model=str(source),
                device=device,
                chunk_length_s=30,
                ignore_warning=True,
            )
        except (OSError, ValueError) as error:
            raise ASRSettingError(
                f"asr_source {source}: cannot load an ASR model ({error})"
            ) from None
        model = self.pipeline.model
        check_asr_language(
            source,
            model.config,
            getattr(model, "generation_config", None),
            language,
        )
        self.source = str(source)
        self.generate_kwargs = dict(generate_kwargs or {})
        if language:
            self.generate_kwargs["language"] = language
        self.sample_rate = sample_rate
        self.batch_size = max(1, int(batch_size))
        if self.pads_audio:
            # padding changes what it hears: one utterance at a time
            self.batch_size = 1

    @property
    def pads_audio(self):
        """True for a CTC model without an attention mask (wav2vec 2.0
        base layout), which hears the zeros padding a batch; Whisper pads
        every input to 30 s anyway."""
        extractor = getattr(self.pipeline, "feature_extractor", None)
        return str(getattr(self.pipeline, "type", "")).startswith(
            "ctc"
        ) and not getattr(extractor, "return_attention_mask", True)

    @property
    def decoding(self):
        """The decoding options: what, besides the weights, decides the
        text (the generation config and the pipeline's chunking)."""
        generation = getattr(self.pipeline.model, "generation_config", None)
        return {
            "generate_kwargs": self.generate_kwargs,
            "generation_config": generation.to_dict() if generation else {},
            "chunk_length_s": 30,
            "sample_rate": self.sample_rate,
        }

    def fingerprint(self):
        """SHA-256 of everything that decides the transcripts.

        The model class and config, the tokenizer's vocabulary, the
        decoding options and every weight; not where the model was loaded
        from (a copy in another folder has the same fingerprint).

        Returns
        -------
        str
            64 hex digits.
        """
        digest = hashlib.sha256()
        model = self.pipeline.model
        config = {
            k: v
            for k, v in model.config.to_dict().items()
            if k != "_name_or_path"
        }
        tokenizer = getattr(self.pipeline, "tokenizer", None)
        vocab = tokenizer.get_vocab() if tokenizer is not None else {}
        decoding = {
            k: v
            for k, v in self.decoding["generation_config"].items()
            if k != "_from_model_config" and "transformers_version" not in k
        }
        for part in (
            type(model).__qualname__,
            json.dumps(config, sort_keys=True, default=str),
            json.dumps(sorted(vocab.items()), default=str),
            json.dumps(
                {**self.decoding, "generation_config": decoding},
                sort_keys=True,
                default=str,
            ),
        ):
            digest.update(part.encode("utf-8") + b"\0")
        add_state_dict(digest, model.state_dict())
        return digest.hexdigest()

    def __call__(self, wav):
        """The transcript of one waveform.

        Arguments
        ---------
        wav : torch.Tensor
            1-D waveform at ``sample_rate``.

        Returns
        -------
        str
            The transcript, stripped (may be empty).
        """
        return self.transcribe([wav])[0]

    def transcribe(self, wavs):
        """The transcripts of several waveforms, ``batch_size`` at a time
        (in the order given: what shares a batch is the caller's choice).

        Arguments
        ---------
        wavs : list of torch.Tensor
            1-D waveforms at ``sample_rate``.

        Returns
        -------
        list of str
            Stripped transcripts (may be empty).
        """
        inputs = [
            {"raw": wav.cpu().numpy(), "sampling_rate": self.sample_rate}
            for wav in wavs
        ]
        kwargs = {"batch_size": self.batch_size}
        if self.generate_kwargs:
            kwargs["generate_kwargs"] = self.generate_kwargs
        outputs = self.pipeline(inputs, **kwargs)
        return [out["text"].strip() for out in outputs]
