"""``mtmm serve``: a model behind an HTTP API and a web page (uvicorn).

::

    mtmm serve --model <model folder or hub id> [--backend torch|onnx|...]
        [--host 127.0.0.1] [--port 8000] [--api_key KEY] [limits ...]

Needs the ``serve`` extra (``pip install "speechbrain-mtmm[serve]"``:
FastAPI, uvicorn, python-multipart); without it, ``mtmm serve`` says so in
one line and every other verb works. The app is
:func:`speechbrain_mtmm.serving.app.create_app`.

Safe by default: it listens on 127.0.0.1 only (another host, e.g.
``0.0.0.0``, gets a warning), the API takes an optional key
(``--api_key`` or the ``MTMM_API_KEY`` environment variable, sent as
``Authorization: Bearer <key>``), browsers of other origins may not call
it unless ``--cors_origin`` names them, and uploads are decoded in memory.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import os
import sys
import threading
import time
from pathlib import Path

import torch

from speechbrain_mtmm.inference.predict import UsageError, load_recognizer
from speechbrain_mtmm.serving.model_info import model_info
from speechbrain_mtmm.serving.settings import (
    API_KEY_VARIABLE,
    ServeLimits,
)

try:  # the serve extra
    import uvicorn

    from speechbrain_mtmm.serving.app import create_app
except ImportError as missing:  # every other verb works without it
    uvicorn = create_app = None
    MISSING = missing.name
else:
    MISSING = None

INSTALL_HINT = (
    "mtmm serve needs FastAPI, uvicorn and python-multipart: "
    'pip install "speechbrain-mtmm[serve]"'
)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def host_warning(host, api_key):
    """The warning for a server others can reach (None on loopback).

    Arguments
    ---------
    host : str
        The address the server listens on.
    api_key : str or None
        Its API key.

    Returns
    -------
    str or None

    Example
    -------
    >>> host_warning("127.0.0.1", None)
    >>> print(host_warning("0.0.0.0", None))
    mtmm serve: warning: listening on 0.0.0.0 (every network interface): \
anyone who can reach this machine can use the model; set an API key \
(--api_key or MTMM_API_KEY)
    """
    if host in LOOPBACK:
        return None
    where = " (every network interface)" if host in ("0.0.0.0", "::") else ""
    advice = (
        ""
        if api_key
        else (f"; set an API key (--api_key or {API_KEY_VARIABLE})")
    )
    return (
        f"mtmm serve: warning: listening on {host}{where}: anyone who can "
        f"reach this machine can use the model{advice}"
    )


def run_serve(
    model,
    backend="torch",
    asr_source=None,
    device="cpu",
    host="127.0.0.1",
    port=8000,
    limits=None,
    api_key=None,
    cors_origin=None,
    threads=None,
    log_level="info",
    trust_remote_code=False,
):
    """Loads a model and serves it until stopped (Ctrl-C).

    Arguments
    ---------
    model : str
        A folder written by ``mtmm export``, or its hub id.
    backend : str
        ``torch``, ``onnx`` or ``onnx-int8``.
    asr_source : str, optional
        ASR model for requests without a transcript.
    device : str
        Where the model runs (torch backend).
    host : str
        The address to listen on.
    port : int
        The port (0: any free one, printed).
    limits : ServeLimits, optional
        Request limits and batching.
    api_key : str, optional
        The key requests must send (default: ``$MTMM_API_KEY``, if set).
    cors_origin : list of str, optional
        Origins whose pages may call the API.
    threads : int, optional
        Torch threads for the model.
    log_level : str
        uvicorn's log level.
    trust_remote_code : bool
        Let the model's ``hyperparams.yaml`` run code that ``mtmm export``
        does not write (torch backend; only for a model you trust).

    Returns
    -------
    int
        0 after a clean stop (Ctrl-C; SIGTERM ends the process as the
        signal's default, after the same clean shutdown); 1 without the
        serve extra; 2 for a model that cannot be loaded or bad options.
    """
    if MISSING is not None:
        print(f"{INSTALL_HINT} ({MISSING} is missing)", file=sys.stderr)
        return 1
    api_key = api_key or os.environ.get(API_KEY_VARIABLE) or None
    warning = host_warning(host, api_key)
    if warning:
        print(warning, file=sys.stderr)
    if threads:
        torch.set_num_threads(threads)
    try:
        limits = limits or ServeLimits()
        recognizer = load_recognizer(
            model, asr_source, device, backend, trust=trust_remote_code
        )
    except (UsageError, ValueError) as error:
        print(f"mtmm serve: error: {error}", file=sys.stderr)
        return 2
    info = model_info(recognizer, model, backend)
    app = create_app(recognizer, info, limits, api_key, cors_origin)
    config = uvicorn.Config(
        app, host=host, port=port, log_level=log_level, access_log=False
    )
    server = uvicorn.Server(config)
    sock = config.bind_socket()
    bound = sock.getsockname()[1]
    where = getattr(recognizer.system, "folder", None) or Path(model)
    name = f"[{host}]" if ":" in host else host

    def announce():
        """Says where the server listens, once it accepts requests."""
        while not (server.started or server.should_exit):
            time.sleep(0.05)
        if server.started:
            print(
                f"mtmm serve: {where} ({backend}) on http://{name}:{bound}/ "
                f"(API: POST /v1/predict; schema: /openapi.json)"
                + ("; API key required" if api_key else ""),
                file=sys.stderr,
                flush=True,
            )

    threading.Thread(target=announce, daemon=True).start()
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C: uvicorn has shut down cleanly
        pass
    print("mtmm serve: stopped", file=sys.stderr)
    return 0
