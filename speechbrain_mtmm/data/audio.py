"""Reading audio for training and inference: 16 kHz mono, checked.

Every problem names the file: an unreadable, empty or non-finite file is an
error; stereo audio is mixed down and other sample rates are resampled, each
with a warning (never silently); 8 kHz audio gets a louder warning because
the band above 4 kHz is missing and cannot be restored by resampling.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import functools

import torch
import torchaudio
from speechbrain.dataio import audio_io
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


class AudioFileError(ValueError):
    """An audio file that cannot be used; the message names it."""


@functools.lru_cache(maxsize=16)
def _resampler(orig_freq, new_freq):
    return torchaudio.transforms.Resample(orig_freq, new_freq)


#: Sample formats (soundfile subtypes) that can hold NaN or inf
FLOAT_SUBTYPES = ("FLOAT", "DOUBLE")


def audio_duration(path):
    """The duration of an audio file, checked before any training.

    Read from the header, as SpeechBrain's ``read_audio_info`` does; an
    unreadable header or a file without samples is an error naming it.
    Only files of floating-point samples can hold NaN or inf, so only they
    are decoded, to check every sample (integer PCM, IEMOCAP's format,
    is never decoded here).

    Arguments
    ---------
    path : str or os.PathLike
        Audio file.

    Returns
    -------
    float
        Seconds.

    Raises
    ------
    AudioFileError
        Unreadable, empty, or holding NaN/inf samples.

    Example
    -------
    >>> path = str(getfixture("tmpdir") / "nan.wav")
    >>> wav = torch.zeros(1, 1600)
    >>> audio_io.save(path, wav, 16000, subtype="FLOAT")
    >>> audio_duration(path)
    0.1
    >>> wav[0, 5] = float("nan")
    >>> audio_io.save(path, wav, 16000, subtype="FLOAT")
    >>> audio_duration(path)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.data.audio.AudioFileError: ...nan.wav: the audio \
contains NaN or inf samples
    """
    try:
        info = audio_io.info(str(path))
    except Exception as error:  # soundfile raises several types
        cause = error.__cause__ or error
        raise AudioFileError(f"{path}: cannot read audio ({cause})") from None
    if info.frames == 0:
        raise AudioFileError(f"{path}: the file holds no audio samples")
    if info.subtype in FLOAT_SUBTYPES:
        wav, _ = audio_io.load(str(path))
        if not torch.isfinite(wav).all():
            raise AudioFileError(
                f"{path}: the audio contains NaN or inf samples"
            )
    return info.frames / info.sample_rate


def load_audio(path, sample_rate=16000, max_seconds=None, name=None):
    """Loads one file as a mono waveform at ``sample_rate``.

    Arguments
    ---------
    path : str or file-like
        Audio file (any format soundfile reads), or a binary file object
        (e.g. ``io.BytesIO`` of an upload: decoded in memory).
    sample_rate : int
        Target sample rate.
    max_seconds : float, optional
        Keep only the first ``max_seconds`` (None keeps everything). Callers
        count and report cropped files; see the recipe's data preparation.
    name : str, optional
        What messages call the audio (default: ``path``).

    Returns
    -------
    torch.Tensor
        Waveform of shape ``(samples,)``, float32.

    Raises
    ------
    AudioFileError
        Unreadable, empty, or containing NaN/inf samples.

    Example
    -------
    >>> from speechbrain.dataio import audio_io
    >>> path = str(getfixture("tmpdir") / "stereo_8k.wav")
    >>> audio_io.save(path, torch.rand(2, 8000) - 0.5, 8000)
    >>> load_audio(path).shape
    torch.Size([16000])
    >>> import io
    >>> with open(path, "rb") as fin:
    ...     upload = io.BytesIO(fin.read())
    >>> load_audio(upload, name="upload.wav").shape
    torch.Size([16000])
    """
    source = path if hasattr(path, "read") else str(path)
    name = str(path) if name is None else name
    try:
        wav, file_rate = audio_io.load(source)
    except Exception as error:  # soundfile raises several types
        cause = error.__cause__ or error
        raise AudioFileError(f"{name}: cannot read audio ({cause})") from None
    if wav.numel() == 0:
        raise AudioFileError(f"{name}: the file holds no audio samples")
    if not torch.isfinite(wav).all():
        raise AudioFileError(f"{name}: the audio contains NaN or inf samples")
    if wav.shape[0] > 1:
        logger.warning(f"{name}: {wav.shape[0]} channels, mixed down to mono")
        wav = wav.mean(dim=0, keepdim=True)
    if file_rate != sample_rate:
        if file_rate < sample_rate:
            logger.warning(
                f"{name}: {file_rate} Hz audio upsampled to {sample_rate} Hz; "
                f"content above {file_rate // 2} Hz is missing"
            )
        else:
            logger.info(f"{name}: resampled {file_rate} -> {sample_rate} Hz")
        wav = _resampler(file_rate, sample_rate)(wav)
    wav = wav[0]
    if max_seconds is not None:
        wav = wav[: int(max_seconds * sample_rate)]
    return wav
