"""The ``mtmm serve`` ASGI app: an HTTP API and a web page (FastAPI).

Routes:

* ``POST /v1/predict``: a ``multipart/form-data`` request with an audio
  file (field ``audio``) and/or a transcript (field ``text``); answers the
  fields of a ``mtmm predict`` row (``file``, ``label``, ``probs``, the
  dimensions on 0-1 and on the model's rating scale, ``path``,
  ``text_used``, ``windows``, ``warning``);
* ``GET /v1/model``: the model's labels, dimensions, rating scale,
  encoders, backend and model card summary
  (:func:`~speechbrain_mtmm.serving.model_info.model_info`);
* ``GET /health``: ``{"status": "ok"}``, the queue's state and how many
  batches and requests were predicted, answered at once however busy the
  model is;
* ``GET /``: the web page (``static/``: plain HTML, JavaScript and CSS
  served by the app, nothing from elsewhere);
* ``GET /openapi.json``: the API's OpenAPI schema (FastAPI's ``/docs``
  pages are off: they load their scripts from a CDN).

Every refusal is a JSON ``{"detail": "<one line>"}`` with a 4xx status, or
503 with ``Retry-After`` when the queue is full. The request body is read
into memory up to ``--max_upload_mb`` and parsed there with
python-multipart's parser (Starlette's form parser would spool a large
upload to a temporary file): nothing from a request is written to disk.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import asyncio
import importlib.metadata
import re
import secrets
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from speechbrain.utils.logger import get_logger
from starlette.datastructures import MutableHeaders

from speechbrain_mtmm.serving.batching import (
    INPUT_ERRORS,
    MicroBatcher,
    RequestError,
    Utterance,
    decode_audio,
    predict_utterances,
    rounded,
)
from speechbrain_mtmm.serving.settings import ServeLimits

logger = get_logger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
#: The page may load nothing from elsewhere (it must work offline)
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; media-src 'self' "
    "blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
#: Content types of an upload taken as audio (its bytes decide the rest)
AUDIO_TYPES = re.compile(
    r"^(audio/[\w.+-]+|application/octet-stream|video/(ogg|webm))$"
)
FIELDS = ("audio", "text")
#: Room for the multipart boundaries and part headers of a request
FORM_OVERHEAD = 64 * 1024
MAX_NAME = 200
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
try:
    VERSION = importlib.metadata.version("speechbrain-mtmm")
except importlib.metadata.PackageNotFoundError:  # a checkout on the path
    VERSION = "unknown"

PREDICT_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "audio": {
                            "type": "string",
                            "format": "binary",
                            "description": "WAV, FLAC, OGG or MP3, any "
                            "sample rate (resampled), stereo mixed down",
                        },
                        "text": {
                            "type": "string",
                            "description": "the transcript (empty: ASR "
                            "when the model has it, else audio-only)",
                        },
                    },
                }
            }
        },
    }
}
PREDICTION_EXAMPLE = {
    "file": "utt.wav",
    "label": "hap",
    "probs": {"neu": 0.1, "hap": 0.8, "sad": 0.05, "ang": 0.05},
    "valence": 0.81,
    "arousal": 0.66,
    "valence_1to5": 4.24,
    "arousal_1to5": 3.64,
    "path": "audio+text",
    "text_used": "I got the job!",
    "windows": 1,
}
ERROR = {"content": {"application/json": {"example": {"detail": "..."}}}}


def parse_form(body, content_type):
    """The fields of a ``multipart/form-data`` body, parsed in memory.

    Arguments
    ---------
    body : bytes
        The request body.
    content_type : str
        Its ``Content-Type`` header (with the boundary).

    Returns
    -------
    dict
        ``{name: (bytes, file name or None, content type or None)}``.

    Raises
    ------
    RequestError
        415 for another content type, 400 for a malformed body, an
        unknown or repeated field.

    Example
    -------
    >>> body = (b'--b\\r\\nContent-Disposition: form-data; name="text"\\r\\n'
    ...         b'\\r\\nHello\\r\\n--b--\\r\\n')
    >>> parse_form(body, "multipart/form-data; boundary=b")
    {'text': (b'Hello', None, None)}
    >>> parse_form(b"{}", "application/json")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.serving.batching.RequestError: send multipart/form-data \
with a file field 'audio' and/or a text field 'text', not application/json
    """
    mime, options = parse_options_header(content_type or "")
    mime = mime.decode("latin-1")
    if mime != "multipart/form-data":
        raise RequestError(
            415,
            "send multipart/form-data with a file field 'audio' and/or a "
            f"text field 'text', not {mime or 'a body without a type'}",
        )
    boundary = options.get(b"boundary")
    if not boundary:
        raise RequestError(400, "multipart/form-data without a boundary")
    parts = []

    def begin():
        """A part starts."""
        parts.append({"headers": {}, "data": bytearray(), "field": b""})

    def field(data, start, end):
        """A piece of a header's name."""
        parts[-1]["field"] += data[start:end]

    def value(data, start, end):
        """A piece of a header's value."""
        part = parts[-1]
        name = part["field"].lower()
        part["headers"][name] = part["headers"].get(name, b"") + data[start:end]

    def header_end():
        """A header ends."""
        parts[-1]["field"] = b""

    def data(data, start, end):
        """A piece of the part's content."""
        parts[-1]["data"] += data[start:end]

    callbacks = {
        "on_part_begin": begin,
        "on_header_field": field,
        "on_header_value": value,
        "on_header_end": header_end,
        "on_part_data": data,
    }
    try:
        parser = MultipartParser(boundary, callbacks)
        parser.write(body)
        parser.finalize()
    except FormParserError as error:
        raise RequestError(400, f"malformed multipart body ({error})") from None
    fields = {}
    for part in parts:
        disposition = part["headers"].get(b"content-disposition", b"")
        _, options = parse_options_header(disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name not in FIELDS:
            raise RequestError(
                400, f"unknown field {name!r}: send 'audio' and/or 'text'"
            )
        if name in fields:
            raise RequestError(400, f"the field {name!r} is given twice")
        filename = options.get(b"filename")
        ctype = part["headers"].get(b"content-type")
        fields[name] = (
            bytes(part["data"]),
            None if filename is None else filename.decode("utf-8", "replace"),
            None if ctype is None else ctype.decode("latin-1").strip(),
        )
    return fields


def check_text(raw, limits):
    """The transcript of a request, or None.

    Arguments
    ---------
    raw : bytes or None
        The ``text`` field.
    limits : ServeLimits
        ``max_text_chars``.

    Returns
    -------
    str or None

    Raises
    ------
    RequestError
        400 when not UTF-8, 413 when too long.

    Example
    -------
    >>> check_text("Oui, très bien".encode(), ServeLimits())
    'Oui, très bien'
    >>> check_text(b"abc", ServeLimits(max_text_chars=2))
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.serving.batching.RequestError: a transcript of 3 \
characters; the limit is 2 (--max_text_chars)
    """
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError(400, "the transcript is not UTF-8 text") from None
    if len(text) > limits.max_text_chars:
        raise RequestError(
            413,
            f"a transcript of {len(text)} characters; the limit is "
            f"{limits.max_text_chars} (--max_text_chars)",
        )
    return text.strip() or None


def check_audio_type(name, content_type):
    """Refuses an upload whose content type says it is not audio.

    Arguments
    ---------
    name : str
        The upload's file name.
    content_type : str or None
        Its content type (None or ``application/octet-stream``: the bytes
        decide).

    Raises
    ------
    RequestError
        415.

    Example
    -------
    >>> check_audio_type("a.wav", "audio/x-wav")
    >>> check_audio_type("a.png", "image/png")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.serving.batching.RequestError: a.png: image/png is not \
audio; send WAV, FLAC, OGG or MP3
    """
    mime = (content_type or "application/octet-stream").split(";")[0]
    if not AUDIO_TYPES.match(mime.strip().lower()):
        raise RequestError(
            415, f"{name}: {mime} is not audio; send WAV, FLAC, OGG or MP3"
        )


async def _read_body(request, limits):
    """The request body, refused (413) as soon as it passes the limit
    (before reading it when its ``Content-Length`` does)."""
    limit = limits.max_upload_bytes + FORM_OVERHEAD
    declared = request.headers.get("content-length")
    too_big = RequestError(
        413,
        f"the request is larger than the limit of {limits.max_upload_mb:g} "
        "MiB (--max_upload_mb)",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def create_app(recognizer, info, limits=None, api_key=None, cors_origin=None):
    """The ASGI app serving one model.

    Arguments
    ---------
    recognizer : MultimodalEmotionRecognizer
        The model (anything with ``predict_batch`` and ``sample_rate``).
    info : dict
        What ``GET /v1/model`` answers
        (:func:`~speechbrain_mtmm.serving.model_info.model_info`).
    limits : ServeLimits, optional
        Request limits and batching (default: ``ServeLimits()``).
    api_key : str, optional
        When given, ``/v1/*`` answer only requests with the header
        ``Authorization: Bearer <api_key>`` (401 otherwise).
    cors_origin : list of str, optional
        Origins allowed to call the API from a browser (CORS); none by
        default.

    Returns
    -------
    fastapi.FastAPI
        Its ``state.batcher`` is the
        :class:`~speechbrain_mtmm.serving.batching.MicroBatcher`.

    Example
    -------
    >>> app = create_app(None, {"labels": []})
    >>> sorted(r.path for r in app.routes if "static" not in r.path)
    ['/', '/health', '/openapi.json', '/v1/model', '/v1/predict']
    """
    limits = limits or ServeLimits()
    batcher = MicroBatcher(
        lambda items: predict_utterances(recognizer, items), limits
    )

    @asynccontextmanager
    async def lifespan(app):
        """Starts and stops the batch worker with the server."""
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    app = FastAPI(
        title="speechbrain-mtmm",
        version=VERSION,
        description="Emotion class, valence and arousal of an utterance "
        "from its audio and transcript.",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.add_middleware(SecurityHeaders)
    if cors_origin:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origin),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization"],
        )

    @app.exception_handler(RequestError)
    async def refused(request, error):
        """A refusal: its status and one line."""
        return JSONResponse(
            {"detail": str(error)}, error.status, headers=error.headers
        )

    @app.exception_handler(Exception)
    async def failed(request, error):
        """A bug: 500 with one line (the traceback goes to the log)."""
        logger.exception("mtmm serve: request failed")
        line = _one_line(error, None)
        return JSONResponse(
            {"detail": f"internal error: {type(error).__name__}: {line}"},
            500,
        )

    def authorize(request):
        """Refuses a request without the API key (when there is one)."""
        if api_key is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(
            " "
        )
        if scheme.lower() != "bearer" or not secrets.compare_digest(
            given.strip().encode(), api_key.encode()
        ):
            raise RequestError(
                401,
                "this server needs an API key: send the header "
                "'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )

    @app.get("/", include_in_schema=False)
    async def index():
        """The web page."""
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/health", summary="Whether the server is up, and its queue")
    async def health():
        """Answered at once, however busy the model is."""
        return {
            "status": "ok",
            "queued": batcher.queued,
            "running": batcher.running,
            "queue_size": limits.queue_size,
            "batches": batcher.batches,
            "predicted": batcher.predicted,
        }

    @app.get("/v1/model", summary="The served model")
    async def model(request: Request):
        """Labels, dimensions, rating scale, encoders, backend, card."""
        authorize(request)
        return {**info, "limits": vars(limits)}

    @app.post(
        "/v1/predict",
        summary="Emotion of one utterance: audio and/or transcript",
        openapi_extra=PREDICT_FORM,
        responses={
            200: {
                "description": "The fields of a `mtmm predict` row",
                "content": {
                    "application/json": {"example": PREDICTION_EXAMPLE}
                },
            },
            **{code: ERROR for code in (400, 401, 413, 415, 422, 503, 504)},
        },
    )
    async def predict(request: Request):
        """Predicts the request's audio and/or transcript in the next
        micro-batch."""
        authorize(request)
        with batcher.slot():
            body = await _read_body(request, limits)
            fields = parse_form(body, request.headers.get("content-type"))
            text = check_text(fields.get("text", (None,))[0], limits)
            wav, name = None, None
            if "audio" in fields:
                data, name, content_type = fields["audio"]
                # echoed and logged: no control characters, bounded
                name = CONTROL.sub("?", name or "audio")[:MAX_NAME]
                check_audio_type(name, content_type)
                if len(data) > limits.max_upload_bytes:
                    raise RequestError(
                        413,
                        f"{name}: larger than {limits.max_upload_mb:g} MiB "
                        "(--max_upload_mb)",
                    )
                wav = await asyncio.to_thread(
                    decode_audio,
                    data,
                    name,
                    recognizer.sample_rate,
                    limits.max_audio_seconds,
                )
            elif text is None:
                raise RequestError(
                    400,
                    "send an audio file (field 'audio'), a transcript "
                    "(field 'text'), or both",
                )
            try:
                result = await batcher.predict(Utterance(wav, text))
            except RequestError:
                raise
            except ValueError as error:  # e.g. a model that needs text
                raise RequestError(422, _one_line(error, name)) from None
            except INPUT_ERRORS as error:
                raise RequestError(500, _one_line(error, name)) from None
        return {"file": name, **rounded(result)}

    return app


class SecurityHeaders:
    """ASGI middleware: every response forbids loading anything from
    elsewhere (``Content-Security-Policy``, the page works offline) and
    content sniffing.

    Arguments
    ---------
    app : ASGI app
        The app it wraps.

    Example
    -------
    >>> app = create_app(None, {})  # it is installed there
    >>> [m.cls.__name__ for m in app.user_middleware]
    ['SecurityHeaders']
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            """Adds the headers to the response's start."""
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", PAGE_POLICY)
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _one_line(error, name):
    """An error of the model as one line naming the upload."""
    message = re.sub(r"^batch item \d+: ", "", str(error)).splitlines()
    where = f"{name}: " if name else ""
    return f"{where}{message[0] if message else type(error).__name__}"
