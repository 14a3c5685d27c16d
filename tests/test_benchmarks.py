"""The GPU benchmark script is ready for a GPU session."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu.sh"


def test_gpu_script_parses_and_refuses_an_unknown_mode():
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0
    result = subprocess.run(
        ["bash", str(SCRIPT), "--bogus"], capture_output=True, text=True
    )
    assert result.returncode == 2 and "usage:" in result.stderr


@pytest.mark.slow
def test_gpu_script_dry_run_prints_every_row_on_cpu(tmp_path):
    """``bash benchmarks/gpu.sh --dry-run``: every step of the GPU run with
    tiny models on the CPU (about 2 minutes; run with -m slow)."""
    result = subprocess.run(
        ["bash", str(SCRIPT), "--dry-run"],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    out = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert "failed or timed out" not in out
    assert "tiny fixed16 bf16" in out and "utt/s" in out  # throughput
    assert "tiny bf16 cpu" in out and "median ms" in out  # latency
    assert "speed-up, total wall time" in out  # cached vs uncached
    assert "checkpoint system.ckpt" in out


#: Prints each benchmark's --help, all in one process (torch imported once)
HELPS = """
import contextlib, io, json, runpy, sys
helps = {}
for script in sys.argv[1:]:
    sys.argv = [script, "--help"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        runpy.run_path(script, run_name="__main__")
    helps[script] = out.getvalue()
print(json.dumps(helps))
"""


@pytest.mark.slow
def test_each_benchmark_takes_the_options_its_readme_lists():
    """benchmarks/README.md: every script takes --quick and --threads N,
    all but asr_cost.py --work DIR (the scripts import torch: slow)."""
    scripts = sorted(
        p.name for p in SCRIPT.parent.glob("*.py") if p.name != "common.py"
    )
    result = subprocess.run(
        [sys.executable, "-c", HELPS, *scripts],
        capture_output=True,
        text=True,
        cwd=SCRIPT.parent,
        env=dict(os.environ, PYTHONPATH=str(SCRIPT.parent)),
    )
    assert result.returncode == 0, result.stderr
    helps = json.loads(result.stdout.splitlines()[-1])
    assert sorted(helps) == scripts  # each printed its help
    for script, text in helps.items():
        wanted = {"--quick", "--threads"}
        wanted |= set() if script == "asr_cost.py" else {"--work"}
        assert wanted <= set(text.split()), f"{script}: {text}"


def test_the_cli_startup_benchmark_takes_the_common_options():
    """benchmarks/cli_startup.py imports no torch: its --help is fast."""
    script = SCRIPT.parent / "cli_startup.py"
    result = subprocess.run(
        [sys.executable, str(script), "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert {"--quick", "--threads", "--work"} <= set(result.stdout.split())
