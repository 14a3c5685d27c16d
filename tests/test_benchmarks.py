"""The GPU benchmark script is ready for a GPU session."""

import os
import subprocess
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
