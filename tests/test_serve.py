"""``mtmm serve``: the HTTP API, its limits and its page, on a real server.

A real uvicorn server on 127.0.0.1 (a free port) serves an export of
conftest's ``light_run`` (the light fbank/hashing pair), in a thread of
this process so that a test can hold the model's worker (a gate around
``predict_batch``) and fill the queue deterministically. Answers are
checked against ``mtmm predict`` and ``MultimodalEmotionRecognizer``
called directly. Marked slow: ``mtmm serve`` itself in a subprocess under
a flood of requests, the page in a real headless Chromium (Debian's
``chromium`` and ``chromium-driver``), and the package without the
``serve`` extra.
"""

import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.inference.predict import load_recognizer
from speechbrain_mtmm.serving import server as serving_server
from speechbrain_mtmm.serving.model_info import model_info
from speechbrain_mtmm.serving.settings import ServeLimits
from speechbrain_mtmm.sharing.export import export_model
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV

uvicorn = pytest.importorskip("uvicorn", reason="the serve extra")
app_module = pytest.importorskip("speechbrain_mtmm.serving.app")

TOL = 1e-4  # a batch pads its waveforms; 5 decimals in the answers
LIMITS = {
    "max_upload_mb": 2.0,
    "max_audio_seconds": 30.0,
    "max_text_chars": 1000,
    "queue_size": 3,
    "max_batch": 4,
    "max_wait_ms": 5.0,
    "timeout_s": 30.0,
}
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
WAIT = 30  # seconds before a test that waits for the server gives up


# ##### A real server in a thread, and a client #####


class GatedRecognizer:
    """The recognizer, whose ``predict_batch`` waits while the gate is
    closed and records the size of every batch."""

    def __init__(self, recognizer):
        self.recognizer = recognizer
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()
        self.batches = []

    @property
    def sample_rate(self):
        return self.recognizer.sample_rate

    def predict_batch(self, wavs, wav_lens=None, texts=None):
        self.batches.append(len(texts))
        self.entered.set()
        assert self.gate.wait(WAIT), "the gate stayed closed"
        return self.recognizer.predict_batch(wavs, wav_lens, texts)


class ServerThread:
    """uvicorn serving ``app`` on 127.0.0.1 (a free port) in a thread."""

    def __init__(self, app):
        self.app = app
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}
        )

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + WAIT
        while not self.server.started:
            assert self.thread.is_alive(), "the server did not start"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(WAIT)
        self.sock.close()
        assert not self.thread.is_alive(), "the server did not stop"


def encode_form(fields):
    """A multipart/form-data body: ``{name: str or (filename, bytes,
    content type)}`` -> (body, content type header)."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for name, value in fields.items():
        body += f"--{boundary}\r\n".encode()
        if isinstance(value, tuple):
            filename, data, ctype = value
            body += (
                f'Content-Disposition: form-data; name="{name}"; '
                f'filename="{filename}"\r\nContent-Type: {ctype}\r\n\r\n'
            ).encode()
            body += data
        else:
            body += (
                f'Content-Disposition: form-data; name="{name}"\r\n\r\n'
            ).encode()
            body += value.encode("utf-8")
        body += b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return bytes(body), f"multipart/form-data; boundary={boundary}"


class Answer:
    """An HTTP answer: status, headers, parsed JSON (or text)."""

    def __init__(self, status, headers, raw):
        self.status, self.headers, self.raw = status, headers, raw
        try:
            self.json = json.loads(raw)
        except ValueError:
            self.json = None


def call(url, fields=None, body=None, ctype=None, headers=None, method=None):
    """One request with urllib; 4xx and 5xx are answers, not errors."""
    headers = dict(headers or {})
    if fields is not None:
        body, ctype = encode_form(fields)
    if ctype is not None:
        headers["Content-Type"] = ctype
    request = urllib.request.Request(url, body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def wav_bytes(path):
    return Path(path).read_bytes()


# ##### Fixtures #####


@pytest.fixture(scope="module")
def model(light_run, tmp_path_factory):
    """An export of conftest's light fbank/hashing run."""
    folder = tmp_path_factory.mktemp("serve") / "model"
    return export_model(light_run.folder, folder)


@pytest.fixture(scope="module")
def recognizer(model):
    return load_recognizer(str(model))


@pytest.fixture(scope="module")
def utterances(synthetic_prepared):
    """(wav path, transcript) of a few synthetic utterances."""
    with open(synthetic_prepared / "iemocap.json", encoding="utf-8") as fin:
        entries = list(json.load(fin).values())
    return [(e["wav"], e["text"]) for e in entries[:6]]


@pytest.fixture(scope="module")
def gated(recognizer):
    return GatedRecognizer(recognizer)


@pytest.fixture(scope="module")
def server(gated, recognizer, model):
    """The module's server: the gated recognizer, small limits."""
    info = model_info(recognizer, str(model), "torch")
    app = app_module.create_app(gated, info, ServeLimits(**LIMITS))
    with ServerThread(app) as running:
        yield running


@pytest.fixture
def closed_gate(gated):
    """Holds the model's worker until the test opens the gate (or ends)."""
    gated.entered.clear()
    gated.gate.clear()
    gated.batches.clear()
    yield gated
    gated.gate.set()


def wait_for_health(url, **expected):
    """Polls /health until it reports ``expected`` (e.g. queued=3)."""
    deadline = time.monotonic() + WAIT
    while True:
        health = call(f"{url}/health")
        assert health.status == 200
        if all(health.json[k] == v for k, v in expected.items()):
            return health.json
        assert time.monotonic() < deadline, (health.json, expected)
        time.sleep(0.02)


def assert_same_prediction(answer, expected, tol=TOL):
    """Same fields and values (floats within ``tol``), ``file`` aside."""
    answer = {k: v for k, v in answer.items() if k != "file"}
    expected = {k: v for k, v in expected.items() if k != "file"}
    assert answer.keys() == expected.keys()
    for key, value in expected.items():
        if key == "probs":
            assert answer[key].keys() == value.keys()
            for label, p in value.items():
                assert answer[key][label] == pytest.approx(p, abs=tol)
        elif isinstance(value, float):
            assert answer[key] == pytest.approx(value, abs=tol), key
        else:
            assert answer[key] == value, key


# ##### The API #####


def test_a_prediction_answers_the_fields_of_a_mtmm_predict_row(
    server, model, utterances, tmp_path
):
    wav, text = utterances[0]
    out = tmp_path / "row.jsonl"
    command = ["predict", "--model", str(model), wav, "--text", text]
    assert mtmm([*command, "--output", str(out)]) == 0
    row = json.loads(out.read_text())
    fields = {"audio": ("utt.wav", wav_bytes(wav), "audio/wav"), "text": text}
    answer = call(f"{server.url}/v1/predict", fields)
    assert answer.status == 200, answer.raw
    assert answer.json["file"] == "utt.wav"
    assert answer.json["path"] == "audio+text"
    assert_same_prediction(answer.json, row, tol=1e-5)


def test_a_transcript_alone_is_a_text_only_prediction(
    server, recognizer, utterances
):
    text = utterances[1][1]
    answer = call(f"{server.url}/v1/predict", {"text": text})
    assert answer.status == 200, answer.raw
    assert answer.json["file"] is None
    assert_same_prediction(answer.json, recognizer.predict_text(text))


def test_waiting_requests_are_predicted_in_one_batch_each_its_own(
    server, recognizer, utterances, closed_gate
):
    def send(utterance):
        wav, text = utterance
        name = Path(wav).name
        fields = {"audio": (name, wav_bytes(wav), "audio/wav"), "text": text}
        return call(f"{server.url}/v1/predict", fields)

    before = call(f"{server.url}/health").json
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(send, utterances[0])
        assert closed_gate.entered.wait(WAIT)
        rest = [pool.submit(send, u) for u in utterances[1:4]]
        wait_for_health(server.url, queued=3, running=1)
        closed_gate.gate.set()
        answers = [first.result(), *(f.result() for f in rest)]
    after = call(f"{server.url}/health").json
    # the three that waited: one batch of the queue (its waveforms then
    # grouped by length for predict_batch)
    assert after["batches"] - before["batches"] == 2
    assert after["predicted"] - before["predicted"] == 4
    assert sum(closed_gate.batches) == 4
    for (wav, text), answer in zip(utterances, answers):
        assert answer.status == 200, answer.raw
        assert answer.json["file"] == Path(wav).name
        assert_same_prediction(answer.json, recognizer.predict_file(wav, text))


def test_a_full_queue_answers_503_with_retry_after_and_health_answers(
    server, utterances, closed_gate
):
    text = utterances[0][1]

    def send():
        return call(f"{server.url}/v1/predict", {"text": text})

    with ThreadPoolExecutor(4) as pool:
        running = pool.submit(send)
        assert closed_gate.entered.wait(WAIT)
        waiting = [pool.submit(send) for _ in range(LIMITS["queue_size"])]
        wait_for_health(server.url, queued=LIMITS["queue_size"])
        refused = send()
        closed_gate.gate.set()
        answered = [running.result(), *(f.result() for f in waiting)]
    assert refused.status == 503
    assert int(refused.headers["Retry-After"]) >= 1
    assert "--queue_size" in refused.json["detail"]
    assert [a.status for a in answered] == [200] * 4


def test_a_request_waiting_past_the_timeout_gets_504(
    gated, recognizer, closed_gate
):
    limits = ServeLimits(**{**LIMITS, "timeout_s": 0.2})
    app = app_module.create_app(gated, {}, limits)
    with ServerThread(app) as running:
        answer = call(f"{running.url}/v1/predict", {"text": "Hello."})
        closed_gate.gate.set()
    assert answer.status == 504
    assert "--timeout_s" in answer.json["detail"]


@pytest.fixture(scope="module")
def two_hour_flac():
    """Two hours of silence as FLAC (180 kB): only its header is read."""
    buffer = io.BytesIO()
    with soundfile.SoundFile(
        buffer, "w", 8000, 1, format="FLAC", subtype="PCM_16"
    ) as out:
        minute = np.zeros(8000 * 60, dtype="int16")
        for _ in range(120):
            out.write(minute)
    return buffer.getvalue()


def bad_requests(wav, two_hour_flac):
    """(case, request arguments, status, words the reason must hold)."""
    audio = wav_bytes(wav)
    post = {"audio": ("a.wav", audio, "audio/wav")}
    return {
        "garbage bytes": (
            {"fields": {"audio": ("a.wav", os.urandom(4000), "audio/wav")}},
            400,
            "not an audio file",
        ),
        "an empty file": (
            {"fields": {"audio": ("a.wav", b"", "audio/wav")}},
            400,
            "empty",
        ),
        "a wrong content type": (
            {"fields": {"audio": ("a.png", audio, "image/png")}},
            415,
            "not audio",
        ),
        "a JSON body": (
            {"body": b'{"text": "hi"}', "ctype": "application/json"},
            415,
            "multipart/form-data",
        ),
        "a 2-hour file": (
            {"fields": {"audio": ("long.flac", two_hour_flac, "audio/flac")}},
            413,
            "7200.0 s of audio",
        ),
        "a 1 MB transcript": (
            {"fields": {**post, "text": "a" * 2**20}},
            413,
            "--max_text_chars",
        ),
        "no audio and no transcript": ({"fields": {}}, 400, "send an audio"),
        "an unknown field": (
            {"fields": {**post, "file": "x"}},
            400,
            "unknown field",
        ),
        "a transcript that is not UTF-8": (
            {
                "body": b'--b\r\nContent-Disposition: form-data; name="text"'
                b"\r\n\r\n\xff\xfe\r\n--b--\r\n",
                "ctype": "multipart/form-data; boundary=b",
            },
            400,
            "UTF-8",
        ),
    }


CASES = [
    "garbage bytes",
    "an empty file",
    "a wrong content type",
    "a JSON body",
    "a 2-hour file",
    "a 1 MB transcript",
    "no audio and no transcript",
    "an unknown field",
    "a transcript that is not UTF-8",
]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_gets_a_4xx_with_a_one_line_reason(
    case, server, utterances, two_hour_flac
):
    arguments, status, words = bad_requests(utterances[0][0], two_hour_flac)[
        case
    ]
    answer = call(f"{server.url}/v1/predict", **arguments)
    assert answer.status == status, answer.raw
    detail = answer.json["detail"]
    assert words in detail and "\n" not in detail
    assert call(f"{server.url}/health").json["status"] == "ok"


def post_raw(url, headers, chunks=()):
    """A POST to /v1/predict through http.client: ``headers``, then
    ``chunks`` in chunked encoding (none: the headers alone)."""
    host, port = url.rsplit("/", 1)[-1].split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=WAIT)
    connection.putrequest("POST", "/v1/predict")
    for name, value in headers.items():
        connection.putheader(name, value)
    connection.endheaders()
    try:
        for chunk in chunks:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        if chunks:
            connection.send(b"0\r\n\r\n")
    except OSError:  # the server answered before reading it all
        pass
    response = connection.getresponse()
    answer = Answer(response.status, response.headers, response.read())
    connection.close()
    return answer


FORM = "multipart/form-data; boundary=b"


def test_a_request_declaring_more_than_the_upload_limit_is_refused_unread(
    server,
):
    size = int((LIMITS["max_upload_mb"] + 1) * 2**20)
    headers = {"Content-Type": FORM, "Content-Length": str(size)}
    answer = post_raw(server.url, headers)  # no body is sent
    assert answer.status == 413
    assert answer.json["detail"] == (
        "the request is larger than the limit of 2 MiB (--max_upload_mb)"
    )


def test_a_chunked_body_passing_the_upload_limit_is_refused(server):
    chunks = [os.urandom(2**16)] * int(3 * LIMITS["max_upload_mb"] * 16)
    headers = {"Content-Type": FORM, "Transfer-Encoding": "chunked"}
    answer = post_raw(server.url, headers, chunks)
    assert answer.status == 413
    assert "--max_upload_mb" in answer.json["detail"]


def test_an_upload_larger_than_a_spool_writes_no_temporary_file(
    server, utterances, monkeypatch
):
    """Starlette's form parser would roll an upload over 1 MB into a
    temporary file; the server parses the body in memory."""
    made = []
    for name in ("TemporaryFile", "NamedTemporaryFile", "mkstemp", "mkdtemp"):
        real = getattr(tempfile, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            made.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(tempfile, name, spy)
    wav, text = utterances[0]
    audio, rate = soundfile.read(wav, dtype="float32")
    data = io.BytesIO()
    long = np.tile(audio, 40)[: 24 * rate]  # 24 s, 4 bytes a sample
    soundfile.write(data, long, rate, format="WAV", subtype="FLOAT")
    assert data.getbuffer().nbytes > 2**20
    fields = {"audio": ("long.wav", data.getvalue(), "audio/wav")}
    answer = call(f"{server.url}/v1/predict", fields)
    assert answer.status == 200, answer.raw
    assert answer.json["windows"] > 1  # longer than the training crop
    assert made == []


def test_v1_model_names_labels_scale_and_the_card(server, model):
    answer = call(f"{server.url}/v1/model")
    assert answer.status == 200
    info = answer.json
    labels = (model / "labels.txt").read_text().split()
    assert info["labels"] == labels
    assert info["rating_scale"] == [1.0, 5.0]
    assert info["rating_keys"]["valence"] == "valence_1to5"
    assert info["encoders"] == {"audio": "fbank", "text": "hashing"}
    title = re.search(r"^# (.+)$", (model / "README.md").read_text(), re.M)
    assert info["card"]["title"] == title.group(1)
    assert info["limits"]["queue_size"] == LIMITS["queue_size"]


def test_the_openapi_schema_documents_the_api(server):
    schema = call(f"{server.url}/openapi.json").json
    assert {"/v1/predict", "/v1/model", "/health"} <= set(schema["paths"])
    form = schema["paths"]["/v1/predict"]["post"]["requestBody"]["content"]
    fields = form["multipart/form-data"]["schema"]["properties"]
    assert set(fields) == {"audio", "text"}


def test_the_page_loads_nothing_from_elsewhere(server):
    page = call(f"{server.url}/")
    assert page.status == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = page.raw.decode()
    links = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert {"/static/app.js", "/static/style.css"} <= set(links)
    for link in links:
        assert link.startswith(("/", "data:")), link
        if link.startswith("/static/"):
            assert call(server.url + link).status == 200, link
    static = Path(app_module.STATIC)
    for path in static.iterdir():
        urls = re.findall(r"https?://[^\s\"')]+", path.read_text())
        assert set(urls) <= {"http://www.w3.org/2000/svg"}, path.name


# ##### Safe by default #####


@pytest.fixture(scope="module")
def guarded(recognizer):
    """A second server: an API key and one CORS origin."""
    app = app_module.create_app(
        recognizer,
        {"labels": []},
        ServeLimits(**LIMITS),
        api_key="s3cret",
        cors_origin=["http://example.org"],
    )
    with ServerThread(app) as running:
        yield running


@pytest.mark.parametrize(
    "authorization", [None, "Bearer wrong", "Basic s3cret", "s3cret"]
)
def test_without_the_api_key_v1_answers_401(guarded, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    for answer in (
        call(f"{guarded.url}/v1/model", headers=headers),
        call(f"{guarded.url}/v1/predict", {"text": "Hi."}, headers=headers),
    ):
        assert answer.status == 401
        assert answer.headers["WWW-Authenticate"] == "Bearer"
        assert "Authorization: Bearer" in answer.json["detail"]


def test_with_the_api_key_v1_answers_and_health_needs_none(guarded):
    key = {"Authorization": "Bearer s3cret"}
    assert call(f"{guarded.url}/v1/model", headers=key).status == 200
    answer = call(f"{guarded.url}/v1/predict", {"text": "Hi."}, headers=key)
    assert answer.status == 200 and answer.json["path"] == "text-only"
    assert call(f"{guarded.url}/health").status == 200


def preflight(url, origin):
    return call(
        f"{url}/v1/predict",
        method="OPTIONS",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
        },
    )


def test_cors_is_off_unless_an_origin_is_given(server, guarded):
    assert "access-control-allow-origin" not in {
        k.lower() for k in preflight(server.url, "http://example.org").headers
    }
    allowed = preflight(guarded.url, "http://example.org")
    assert allowed.headers["Access-Control-Allow-Origin"] == (
        "http://example.org"
    )
    other = preflight(guarded.url, "http://elsewhere.example")
    assert "Access-Control-Allow-Origin" not in other.headers


def test_serve_help_repeats_the_trust_note(capsys):
    assert mtmm(["serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "HyperPyYAML, which can run code" in out
    assert "plain YAML" in out and "--api_key" in out


def test_serve_without_the_extra_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setattr(serving_server, "MISSING", "fastapi")
    assert mtmm(["serve", "--model", "any"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'pip install "speechbrain-mtmm[serve]"' in err


def test_a_bad_limit_is_a_usage_error(capsys):
    assert mtmm(["serve", "--model", "any", "--max_batch", "0"]) == 2
    assert "--max_batch must be at least 1" in capsys.readouterr().err


# ##### Slow: mtmm serve itself, under a flood; the page in a browser #####


@pytest.fixture
def serve_process(model, tmp_path):
    """``mtmm serve`` in a subprocess (port 0, small queue, its own
    TMPDIR): (base URL, TMPDIR, process); stopped with SIGINT at the end
    (the test may stop it first)."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    log = tmp_path / "serve.log"
    env = dict(os.environ, **OFFLINE_ENV, TMPDIR=str(tmp))
    command = [sys.executable, "-m", "speechbrain_mtmm", "serve"]
    command += ["--model", str(model), "--port", "0", "--threads", "1"]
    command += ["--queue_size", "4", "--max_batch", "4"]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stderr=out, env=env)
    try:
        deadline = time.monotonic() + 120
        found = None
        while found is None:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            found = re.search(r"on (http://127\.0\.0\.1:\d+)/", log.read_text())
            time.sleep(0.1)
        yield found.group(1), tmp, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(WAIT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.mark.slow
def test_mtmm_serve_under_a_flood_answers_everyone_and_leaves_no_file(
    serve_process, utterances
):
    url, tmp, process = serve_process
    before = sorted(tmp.rglob("*"))
    wav, text = utterances[0]
    kinds = {
        "audio": {
            "audio": ("a.wav", wav_bytes(wav), "audio/wav"),
            "text": text,
        },
        "text": {"text": text},
        "garbage": {"audio": ("g.wav", os.urandom(3000), "audio/wav")},
        "empty": {"audio": ("e.wav", b"", "audio/wav")},
    }
    plan = (["audio"] * 7 + ["text", "garbage", "empty"]) * 20
    stop = threading.Event()
    health = []

    def poll():
        while not stop.is_set():
            health.append(call(f"{url}/health").status)
            time.sleep(0.05)

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        with ThreadPoolExecutor(32) as pool:
            answers = list(
                pool.map(
                    lambda kind: (kind, call(f"{url}/v1/predict", kinds[kind])),
                    plan,
                )
            )
    finally:
        stop.set()
        poller.join()
    expected = {"audio": 200, "text": 200, "garbage": 400, "empty": 400}
    for kind, answer in answers:
        if answer.status == 503:
            assert int(answer.headers["Retry-After"]) >= 1
        else:
            assert answer.status == expected[kind], (kind, answer.raw)
        if answer.status != 200:
            assert "\n" not in answer.json["detail"]
    assert sum(a.status == 200 for _, a in answers) >= 1
    assert health and set(health) == {200}
    process.send_signal(signal.SIGINT)
    assert process.wait(WAIT) == 0
    assert sorted(tmp.rglob("*")) == before


def browser_or_skip():
    """(chromium, chromedriver) paths; a clear skip without them (a
    failure where MTMM_REQUIRE_BROWSER=1, as in CI)."""
    chromium = shutil.which("chromium") or CHROMIUM
    driver = shutil.which("chromedriver") or CHROMEDRIVER
    missing = [p for p in (chromium, driver) if not Path(p).is_file()]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("the selenium package")
    if missing:
        reason = (
            f"no headless browser ({', '.join(missing)} missing): apt-get "
            "install chromium chromium-driver; pip install selenium"
        )
        if os.environ.get("MTMM_REQUIRE_BROWSER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return chromium, driver


@pytest.mark.slow
def test_the_page_predicts_an_upload_and_a_recording_in_chromium(
    server, recognizer, utterances, tmp_path, monkeypatch
):
    chromium, driver_path = browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    monkeypatch.setenv("SE_OFFLINE", "true")  # no Selenium Manager download
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        # a fake microphone (a beep), allowed without asking
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
    ):
        options.add_argument(argument)
    browser = webdriver.Chrome(
        service=Service(executable_path=driver_path), options=options
    )
    wav, text = utterances[2]
    expected = recognizer.predict_file(wav, text)
    try:
        wait = WebDriverWait(browser, WAIT)
        text_of = lambda id_: browser.find_element(By.ID, id_).text  # noqa
        browser.get(f"{server.url}/")
        wait.until(lambda _: "Classes" in text_of("model-summary"))
        browser.find_element(By.ID, "file").send_keys(str(wav))
        browser.find_element(By.ID, "text").send_keys(text)
        browser.find_element(By.ID, "predict").click()
        wait.until(lambda _: text_of("label"))
        assert text_of("label") == expected["label"]
        assert text_of("path") == "audio+text"
        bars = browser.find_elements(By.CSS_SELECTOR, "#bars .bar-row")
        assert [
            b.find_element(By.CLASS_NAME, "bar-name").text for b in bars
        ] == (recognizer.labels)
        shown = float(text_of("bars").split("\n")[1].split()[0])  # first %
        first = expected["probs"][recognizer.labels[0]]
        assert shown == pytest.approx(100 * first, abs=0.051)
        # record one second from the fake microphone, predict it alone
        browser.find_element(By.ID, "record").click()
        wait.until(lambda _: "Stop" in text_of("record"))
        time.sleep(1.0)
        browser.find_element(By.ID, "record").click()
        wait.until(lambda _: "recording.wav" in text_of("audio-name"))
        browser.find_element(By.ID, "text").clear()
        browser.find_element(By.ID, "predict").click()
        wait.until(
            lambda _: (
                len(browser.find_elements(By.CSS_SELECTOR, "#history li")) == 2
            )
        )
        assert text_of("path") == "audio-only"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#plane .now")) == 1
        assert len(browser.find_elements(By.CSS_SELECTOR, "#plane .past")) == 1
        shot = tmp_path / "serve_page.png"
        assert browser.save_screenshot(str(shot))
        if os.environ.get("MTMM_SCREENSHOT"):  # to look at it
            shutil.copy(shot, os.environ["MTMM_SCREENSHOT"])
        errors = [
            e for e in browser.get_log("browser") if e["level"] == "SEVERE"
        ]
        assert errors == []
    finally:
        browser.quit()


@pytest.mark.slow
def test_without_the_serve_extra_the_package_works_and_serve_says_so():
    code = """
import sys

BLOCKED = ("fastapi", "uvicorn", "python_multipart", "starlette")


class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, Block())
from speechbrain_mtmm.cli import main

assert main(["predict", "--help"]) == 0
sys.exit(main(["serve", "--model", "any"]))
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, **OFFLINE_ENV),
    )
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stdout.startswith("usage: mtmm predict")
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("mtmm serve needs FastAPI")
    assert 'pip install "speechbrain-mtmm[serve]"' in last
