"""Transcripts for audio that comes without one, from any transformers ASR
model (Whisper, wav2vec 2.0 CTC, ...).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from transformers import pipeline


class ASRTranscriber:
    """Transcribes a 16 kHz waveform with a transformers ASR pipeline.

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

    Example
    -------
    >>> transcriber = ASRTranscriber("openai/whisper-small")  # doctest: +SKIP
    >>> transcriber(torch.zeros(16000))  # doctest: +SKIP
    ''
    """

    def __init__(self, source, device="cpu", language=None, sample_rate=16000):
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
        self.generate_kwargs = {"language": language} if language else {}
        self.sample_rate = sample_rate

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
        inputs = {"raw": wav.cpu().numpy(), "sampling_rate": self.sample_rate}
        kwargs = {}
        if self.generate_kwargs:
            kwargs["generate_kwargs"] = self.generate_kwargs
        return self.pipeline(inputs, **kwargs)["text"].strip()
