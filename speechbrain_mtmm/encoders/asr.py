"""Transcripts from any transformers ASR model (Whisper, wav2vec 2.0 CTC),
for training and testing on ASR text and for audio without a transcript.

One component serves the recipe (``transcripts: asr``, through the cache of
:mod:`speechbrain_mtmm.training.transcripts`) and inference (``predict``
without ``--text``): the same model, decoding options and text, which is
used as the ASR system writes it (casing and punctuation included; the
gold transcripts have both too). Only the word error rate normalises
(:func:`~speechbrain_mtmm.training.transcripts.normalize_for_wer`).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import hashlib
import json

from transformers import pipeline

from speechbrain_mtmm.encoders.base import add_state_dict


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
            raise ValueError(
                f"asr_source {source}: cannot load an ASR model ({error})"
            ) from None
        self.source = str(source)
        self.generate_kwargs = dict(generate_kwargs or {})
        if language:
            self.generate_kwargs["language"] = language
        self.sample_rate = sample_rate
        self.batch_size = int(batch_size)

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
        """The transcripts of several waveforms, ``batch_size`` at a time.

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
