"""What ``mtmm serve`` does with a request, without the web framework.

Uploads are decoded in memory (nothing from a request is written to
disk), checked against the server's :class:`.settings.ServeLimits`, and
predicted in micro-batches: :class:`MicroBatcher` holds an asyncio queue
and one worker that gathers up to ``max_batch`` requests that arrive
within ``max_wait_ms`` of the first, runs them through the recognizer's
``predict_batch`` in a thread (the event loop keeps answering), and
answers each request with its own row. A request that arrives when
``queue_size`` requests already wait is refused at once
(:class:`QueueFullError`, HTTP 503 with ``Retry-After``).

SpeechBrain and FastAPI have no request batcher for a ``Pretrained``
model (SpeechBrain batches what one caller gives it, FastAPI runs one
handler per request), hence this small one.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import asyncio
import io
import math
import time
from dataclasses import dataclass
from typing import Optional

import torch
from speechbrain.dataio import audio_io
from speechbrain.utils.data_utils import batch_pad_right

from speechbrain_mtmm.data.audio import AudioFileError, load_audio
from speechbrain_mtmm.inference.predict import DECIMALS

#: Errors of one input (as ``mtmm predict``); a bug still raises
INPUT_ERRORS = (OSError, ValueError, RuntimeError, ArithmeticError)


class RequestError(ValueError):
    """A request the server refuses: an HTTP status and a one-line reason.

    Arguments
    ---------
    status : int
        The HTTP status (4xx, or 503).
    message : str
        What is wrong and what to do, one line.
    headers : dict, optional
        Extra response headers (``Retry-After``).

    Example
    -------
    >>> error = RequestError(413, "too long")
    >>> error.status, str(error)
    (413, 'too long')
    """

    def __init__(self, status, message, headers=None):
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


class QueueFullError(RequestError):
    """The queue is full: HTTP 503 with ``Retry-After`` (seconds).

    Arguments
    ---------
    retry_after : int
        Seconds after which a retry may find room.
    capacity : int
        The queue's length (``--queue_size``).

    Example
    -------
    >>> QueueFullError(2, 8).headers
    {'Retry-After': '2'}
    """

    def __init__(self, retry_after, capacity):
        super().__init__(
            503,
            f"the server is busy ({capacity} requests queued, "
            f"--queue_size); retry in {retry_after} s",
            {"Retry-After": str(retry_after)},
        )


@dataclass
class Utterance:
    """One request's input: a waveform at the model's rate and/or text."""

    wav: Optional[torch.Tensor]
    text: Optional[str]


def decode_audio(data, name, sample_rate, max_seconds):
    """An uploaded file's waveform, decoded in memory and checked.

    Arguments
    ---------
    data : bytes
        The file's bytes (WAV, FLAC, OGG, MP3: what soundfile reads).
    name : str
        The upload's file name, for messages.
    sample_rate : int
        The model's rate (other rates are resampled, stereo mixed down).
    max_seconds : float
        The longest audio accepted, checked on the header before decoding
        and on the samples after.

    Returns
    -------
    torch.Tensor
        1-D waveform at ``sample_rate``.

    Raises
    ------
    RequestError
        400 for an empty or unreadable file, 413 for a too long one.

    Example
    -------
    >>> import soundfile
    >>> buffer = io.BytesIO()
    >>> soundfile.write(buffer, torch.zeros(8000).numpy(), 8000, format="WAV")
    >>> decode_audio(buffer.getvalue(), "a.wav", 16000, 60).shape
    torch.Size([16000])
    >>> decode_audio(b"", "a.wav", 16000, 60)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.serving.batching.RequestError: a.wav: the file is empty
    >>> decode_audio(buffer.getvalue(), "a.wav", 16000, 0.5)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.serving.batching.RequestError: a.wav: 1.0 s of \
audio; the limit is 0.5 s (--max_audio_seconds)
    """
    if not data:
        raise RequestError(400, f"{name}: the file is empty")
    too_long = f"the limit is {max_seconds:g} s (--max_audio_seconds)"
    try:
        info = audio_io.info(io.BytesIO(data))
        seconds = info.frames / info.sample_rate
    except (RuntimeError, ZeroDivisionError):
        raise RequestError(
            400,
            f"{name}: not an audio file this server reads (WAV, FLAC, OGG "
            "or MP3)",
        ) from None
    if seconds > max_seconds:
        raise RequestError(413, f"{name}: {seconds:.1f} s of audio; {too_long}")
    try:
        wav = load_audio(io.BytesIO(data), sample_rate, name=name)
    except AudioFileError as error:
        raise RequestError(400, str(error)) from None
    seconds = len(wav) / sample_rate
    if seconds > max_seconds:  # a header that understated it
        raise RequestError(413, f"{name}: {seconds:.1f} s of audio; {too_long}")
    return wav


def rounded(value, decimals=DECIMALS):
    """A prediction with its floats rounded as ``mtmm predict`` writes them.

    Arguments
    ---------
    value : dict, float or other
        A prediction row (nested dicts are rounded too).
    decimals : int
        Decimal places.

    Returns
    -------
    dict or float
        The same structure, its floats rounded.

    Example
    -------
    >>> rounded({"valence": 0.1234567, "probs": {"hap": 0.333333333}})
    {'valence': 0.12346, 'probs': {'hap': 0.33333}}
    """
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {k: rounded(v, decimals) for k, v in value.items()}
    return value


def predict_utterances(recognizer, utterances):
    """Predicts requests together: ``predict_batch`` for those with audio
    (in groups of similar lengths, :func:`length_groups`) and one for
    those with text only; when a batch fails, each of its requests alone,
    so that one bad request fails only itself.

    Arguments
    ---------
    recognizer : MultimodalEmotionRecognizer
        The model.
    utterances : list of Utterance
        The requests.

    Returns
    -------
    list
        Per request, its prediction (a dict) or the exception it raised.

    Example
    -------
    >>> from speechbrain_mtmm.serving.batching import Utterance
    >>> class Echo:
    ...     def predict_batch(self, wavs, wav_lens=None, texts=None):
    ...         if wavs is None:
    ...             return [{"text": t} for t in texts]
    ...         if any(t == "bad" for t in texts):
    ...             raise ValueError("bad text")
    ...         return [{"samples": round(float(r) * wavs.shape[1])}
    ...                 for r in wav_lens]
    >>> predict_utterances(Echo(), [
    ...     Utterance(torch.zeros(4), "a"), Utterance(None, "b"),
    ...     Utterance(torch.zeros(2), "bad"), Utterance(torch.zeros(3), "c")])
    [{'samples': 4}, {'text': 'b'}, ValueError('bad text'), {'samples': 3}]
    """
    results = [None] * len(utterances)
    with_audio = [i for i, u in enumerate(utterances) if u.wav is not None]
    text_only = [i for i, u in enumerate(utterances) if u.wav is None]
    lengths = [len(utterances[i].wav) for i in with_audio]
    groups = [[with_audio[i] for i in g] for g in length_groups(lengths)]
    for group in (*groups, text_only):
        if not group:
            continue
        try:
            rows = _predict_group(recognizer, [utterances[i] for i in group])
        except INPUT_ERRORS:
            rows = []
            for i in group:
                try:
                    rows.extend(_predict_group(recognizer, [utterances[i]]))
                except INPUT_ERRORS as error:
                    rows.append(error)
        for i, row in zip(group, rows):
            results[i] = row
    return results


#: A batch of waveforms holds at most this share of padding
MAX_PADDING = 0.25


def length_groups(lengths, max_padding=MAX_PADDING):
    """Waveforms of similar lengths together, so that padding a batch to
    its longest costs little (one batch of a 10 s and three 2 s waveforms
    would compute 40 s for 16 s of audio).

    Arguments
    ---------
    lengths : list of int
        The waveforms' lengths.
    max_padding : float
        The largest share of padded samples in a group.

    Returns
    -------
    list of list of int
        Indices into ``lengths``, shortest first.

    Example
    -------
    >>> length_groups([100, 20, 22, 21, 95])
    [[1, 3, 2], [4, 0]]
    """
    groups = []
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        group = groups[-1] if groups else None
        if group:
            total = sum(lengths[j] for j in group) + lengths[i]
            padded = lengths[i] * (len(group) + 1)
            if padded - total <= max_padding * padded:
                group.append(i)
                continue
        groups.append([i])
    return groups


def _predict_group(recognizer, utterances):
    """One ``predict_batch`` call: all with audio, or all text-only."""
    texts = [u.text for u in utterances]
    if utterances[0].wav is None:
        return recognizer.predict_batch(None, None, texts)
    wavs, lens = batch_pad_right([u.wav for u in utterances])
    return recognizer.predict_batch(wavs, lens.double(), texts)


class MicroBatcher:
    """An asyncio queue and one worker predicting its requests in batches.

    Arguments
    ---------
    predict_many : callable
        ``predict_many(items) -> list`` of results or exceptions, one per
        item; runs in a worker thread, one call at a time.
    limits : ServeLimits
        ``max_batch``, ``max_wait_ms``, ``queue_size`` and ``timeout_s``.

    Example
    -------
    >>> from speechbrain_mtmm.serving.settings import ServeLimits
    >>> batches = []
    >>> def double(items):
    ...     batches.append(len(items))
    ...     return [2 * x for x in items]
    >>> async def main():
    ...     batcher = MicroBatcher(double, ServeLimits(max_wait_ms=50))
    ...     batcher.start()
    ...     async def one(x):
    ...         with batcher.slot():
    ...             return await batcher.predict(x)
    ...     try:
    ...         return await asyncio.gather(*(one(x) for x in range(5)))
    ...     finally:
    ...         await batcher.stop()
    >>> asyncio.run(main()), batches
    ([0, 2, 4, 6, 8], [5])
    """

    def __init__(self, predict_many, limits):
        self.predict_many = predict_many
        self.limits = limits
        self.admitted = 0  # requests between slot() and their answer
        self.running = 0  # requests in the batch being predicted
        self.batches = 0  # batches predicted so far
        self.predicted = 0  # requests in them
        self.batch_seconds = 0.0  # moving mean of a batch's duration
        self._queue = None
        self._arrived = None
        self._worker = None

    def slot(self):
        """A place for one request, held until it is answered.

        Returns
        -------
        context manager

        Raises
        ------
        QueueFullError
            When ``queue_size`` requests already wait (besides the batch
            being predicted): nothing of the request needs to be read.
        """
        if self.queued >= self.limits.queue_size:
            raise QueueFullError(self.retry_after(), self.limits.queue_size)
        return _Slot(self)

    def retry_after(self):
        """Seconds until the queue has drained, at the recent batch speed
        (at least 1)."""
        batches = 1 + self.queued / self.limits.max_batch
        return max(1, math.ceil(batches * self.batch_seconds))

    @property
    def queued(self):
        """Requests admitted and not in the running batch."""
        return self.admitted - self.running

    def start(self):
        """Starts the worker (inside the running event loop)."""
        self._queue = asyncio.Queue()
        self._arrived = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run())

    async def stop(self):
        """Stops the worker; waiting requests get a ``RequestError``."""
        if self._worker is not None:
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(
                    RequestError(503, "the server is shutting down")
                )

    async def predict(self, item):
        """Queues one item and waits for its result.

        Arguments
        ---------
        item : object
            What ``predict_many`` takes.

        Returns
        -------
        object
            Its result.

        Raises
        ------
        RequestError
            504 after ``timeout_s``.
        Exception
            The one ``predict_many`` gave for this item.
        """
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))
        self._arrived.set()
        timeout = self.limits.timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        except asyncio.TimeoutError:
            future.cancel()  # the worker skips it if not started yet
            raise RequestError(
                504,
                f"no answer from the model within {timeout:g} s "
                "(--timeout_s); the server is overloaded",
            ) from None

    async def _next_batch(self):
        """The first waiting item, and those that arrive within
        ``max_wait_ms`` of it, up to ``max_batch``."""
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.max_wait_ms / 1000
        while len(batch) < self.limits.max_batch:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                break
        return [(item, f) for item, f in batch if not f.done()]

    async def _run(self):
        while True:
            batch = await self._next_batch()
            if not batch:
                continue
            items = [item for item, _ in batch]
            self.running = len(batch)
            start = time.perf_counter()
            try:
                results = await asyncio.to_thread(self.predict_many, items)
            except Exception as error:  # answered, not lost: 500
                results = [error] * len(batch)
            finally:
                self.running = 0
            seconds = time.perf_counter() - start
            self.batches += 1
            self.predicted += len(batch)
            weight = 1.0 if self.batches == 1 else 0.2
            self.batch_seconds += weight * (seconds - self.batch_seconds)
            for (_, future), result in zip(batch, results):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


class _Slot:
    """Holds one admitted request's place in a :class:`MicroBatcher`."""

    def __init__(self, batcher):
        self.batcher = batcher
        batcher.admitted += 1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.batcher.admitted -= 1
        return False
