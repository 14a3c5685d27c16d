"""``mtmm serve`` under load: N concurrent clients on loopback, with and
without micro-batching.

Starts its own server (``python -m speechbrain_mtmm serve`` on
127.0.0.1, a free port) on a small export, sends a bounded number of
``POST /v1/predict`` requests (32 synthetic utterances of IEMOCAP's
durations, WAV and transcript, in turn) from N asyncio clients, each on a
keep-alive connection, and stops the server. Per configuration: requests
answered (200), refused (503, the queue full) and failed, the median and
95th percentile latency (request sent to answer read), requests per
second, and the mean batch size the server ran (its ``/health``
counters). ``--max_batch 8`` (micro-batching) against ``--max_batch 1``
(none), the same clients and requests.

The model: ``--model DIR`` (an export), else the light fbank/hashing
demo (``mtmm demo --light --size tiny``, exported; about a minute, kept in
``--work``), or with ``--encoders tiny`` the tiny random HuBERT +
DeBERTa-v2 demo (a few minutes). The client is raw asyncio streams
(HTTP/1.1, no extra package), on loopback only; every run is bounded in
requests and in seconds (``--time_limit``).

    python benchmarks/serve_load.py --quick --threads 1
    python benchmarks/serve_load.py --threads 2 --clients 16 --requests 400
"""

import argparse
import asyncio
import io
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import common
import numpy as np
import soundfile

CONFIGS = [("micro-batching", 8), ("no batching", 1)]


def build_model(work, encoders):
    """The demo's run on a synthetic IEMOCAP, exported (reused if there)."""
    demo = work / f"demo_{encoders}"
    model = work / f"model_{encoders}"
    env = dict(os.environ, PYTHONPATH=str(common.REPO), MPLBACKEND="Agg")
    mtmm = [sys.executable, "-m", "speechbrain_mtmm"]
    if not (model / "export_info.json").exists():
        command = [*mtmm, "demo", "--out", str(demo), "--size", "tiny"]
        command += ["--recipe", str(common.RECIPE)]
        if encoders == "light":
            command.append("--light")
        print(f"building the {encoders} demo model in {demo} ...", flush=True)
        subprocess.run(command, check=True, env=env, capture_output=True)
        command = [*mtmm, "export", "--run", str(demo / "run")]
        subprocess.run(
            [*command, "--out", str(model), "--overwrite"],
            check=True,
            env=env,
            capture_output=True,
        )
    return model


def utterances(count, seed=0):
    """``count`` synthetic utterances, IEMOCAP's durations (lognormal,
    median 3.6 s, clipped to 1-10 s) with ~2.5 words a second, as
    (file name, WAV bytes, transcript)."""
    rng = np.random.default_rng(seed)
    made = []
    for i in range(count):
        seconds = float(
            np.clip(
                rng.lognormal(common.LOGNORMAL_MU, common.LOGNORMAL_SIGMA),
                1.0,
                10.0,
            )
        )
        wav = common.synthesize_utterance(rng, "medium", seconds) / 32768.0
        words = []
        while len(words) < max(1, round(2.5 * seconds)):
            words += common.make_sentence(rng, "neutral").split()
        data = io.BytesIO()
        soundfile.write(data, wav, 16000, format="WAV", subtype="PCM_16")
        made.append((f"utt{i:03d}.wav", data.getvalue(), " ".join(words)))
    return made


def form(name, data, text):
    """A multipart/form-data body and its content type."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; '
        f'filename="{name}"\r\nContent-Type: audio/wav\r\n\r\n'
    ).encode()
    body += data
    body += (
        f"\r\n--{boundary}\r\nContent-Disposition: form-data; "
        f'name="text"\r\n\r\n{text}\r\n--{boundary}--\r\n'
    ).encode()
    return body, f"multipart/form-data; boundary={boundary}"


async def exchange(port, connection, method, path, body=b"", ctype=None):
    """One HTTP/1.1 request on a keep-alive connection (opened, or opened
    again, as needed): (status, body, connection)."""
    for attempt in range(2):
        if connection is None:
            connection = await asyncio.open_connection("127.0.0.1", port)
        reader, writer = connection
        head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if ctype:
            head += f"Content-Type: {ctype}\r\n"
        head += f"Content-Length: {len(body)}\r\n\r\n"
        try:
            writer.write(head.encode() + body)
            await writer.drain()
            status_line = await reader.readline()
            if not status_line:
                raise ConnectionResetError("closed by the server")
            headers = {}
            while True:
                line = (await reader.readline()).decode("latin-1").strip()
                if not line:
                    break
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", 0))
            payload = await reader.readexactly(length)
            if headers.get("connection", "").lower() == "close":
                writer.close()
                connection = None
            return int(status_line.split()[1]), payload, connection
        except (ConnectionError, asyncio.IncompleteReadError):
            writer.close()
            connection = None
            if attempt:
                raise
    raise AssertionError("unreachable")


async def load(port, bodies, clients, requests, time_limit):
    """``clients`` clients sending ``requests`` requests in all (or until
    ``time_limit`` seconds): [(status, seconds)] and the wall time."""
    counter = iter(range(requests))
    results = []
    deadline = time.monotonic() + time_limit

    async def client():
        """Sends requests until none are left or time is up."""
        connection = None
        for index in counter:
            if time.monotonic() > deadline:
                break
            body, ctype = bodies[index % len(bodies)]
            start = time.perf_counter()
            try:
                status, _, connection = await exchange(
                    port, connection, "POST", "/v1/predict", body, ctype
                )
            except (ConnectionError, asyncio.IncompleteReadError, OSError):
                status, connection = -1, None
            results.append((status, time.perf_counter() - start))
        if connection is not None:
            connection[1].close()

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return results, time.perf_counter() - start


async def health(port):
    """The server's /health answer."""
    status, body, connection = await exchange(port, None, "GET", "/health")
    connection[1].close()
    return json.loads(body)


def start_server(model, max_batch, args, log):
    """``mtmm serve`` on 127.0.0.1, a free port: (process, port)."""
    env = dict(os.environ, PYTHONPATH=str(common.REPO))
    command = [sys.executable, "-m", "speechbrain_mtmm", "serve"]
    command += ["--model", str(model), "--port", "0"]
    command += ["--max_batch", str(max_batch)]
    command += ["--max_wait_ms", str(args.max_wait_ms)]
    command += ["--queue_size", str(max(32, 2 * args.clients))]
    if args.threads:
        command += ["--threads", str(args.threads)]
    with open(log, "w") as out:
        process = subprocess.Popen(command, stderr=out, env=env)
    deadline = time.monotonic() + 180
    while True:
        found = re.search(r"on http://127\.0\.0\.1:(\d+)/", log.read_text())
        if found:
            return process, int(found.group(1))
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"mtmm serve did not start:\n{log.read_text()}")
        time.sleep(0.2)


def stop_server(process):
    """Ctrl-C, then a kill if it hangs."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_config(name, max_batch, model, bodies, args, work):
    """One configuration's figures."""
    process, port = start_server(
        model, max_batch, args, work / f"serve_{max_batch}.log"
    )
    try:
        asyncio.run(load(port, bodies, 2, 8, args.time_limit))  # warm-up
        before = asyncio.run(health(port))
        results, wall = asyncio.run(
            load(port, bodies, args.clients, args.requests, args.time_limit)
        )
        after = asyncio.run(health(port))
    finally:
        stop_server(process)
    ok = sorted(seconds for status, seconds in results if status == 200)
    batches = after["batches"] - before["batches"]
    predicted = after["predicted"] - before["predicted"]
    return {
        "name": name,
        "max_batch": max_batch,
        "sent": len(results),
        "ok": len(ok),
        "busy": sum(status == 503 for status, _ in results),
        "failed": sum(status not in (200, 503) for status, _ in results),
        "p50_ms": 1000 * statistics.median(ok) if ok else None,
        "p95_ms": 1000 * ok[max(0, round(0.95 * len(ok)) - 1)] if ok else None,
        "req_per_s": len(ok) / wall,
        "mean_batch": predicted / batches if batches else None,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--work", default=None, help="work folder (kept)")
    parser.add_argument("--model", default=None, help="an export to serve")
    parser.add_argument(
        "--encoders",
        choices=["light", "tiny"],
        default="light",
        help="the demo model to build without --model",
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--max_wait_ms", type=float, default=10.0)
    parser.add_argument(
        "--time_limit",
        type=float,
        default=300.0,
        help="seconds per configuration at most",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.requests = 8, 80
    work = Path(args.work or tempfile.mkdtemp(prefix="serve_load_"))
    work.mkdir(parents=True, exist_ok=True)
    model = Path(args.model) if args.model else build_model(work, args.encoders)
    bodies = [form(*utterance) for utterance in utterances(32)]
    print(
        f"serve_load: {args.clients} clients, {args.requests} requests of "
        f"POST /v1/predict (WAV + transcript) on loopback; model {model}"
    )
    print(f"machine: {common.machine()}; server threads {args.threads}")
    rows = [run_config(*c, model, bodies, args, work) for c in CONFIGS]
    print(
        f"\n{'configuration':16s}{'max_batch':>10s}{'sent':>6s}{'ok':>6s}"
        f"{'503':>5s}{'failed':>7s}{'p50 ms':>9s}{'p95 ms':>9s}"
        f"{'req/s':>8s}{'batch':>7s}"
    )
    for r in rows:
        print(
            f"{r['name']:16s}{r['max_batch']:10d}{r['sent']:6d}{r['ok']:6d}"
            f"{r['busy']:5d}{r['failed']:7d}{r['p50_ms'] or 0:9.1f}"
            f"{r['p95_ms'] or 0:9.1f}{r['req_per_s']:8.1f}"
            f"{r['mean_batch'] or 0:7.2f}"
        )
    return 0 if all(r["failed"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
