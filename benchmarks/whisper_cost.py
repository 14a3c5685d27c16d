"""What a Whisper audio encoder costs per utterance on the CPU.

Whisper-large-v3's encoder (d_model 1280, 32 layers, 20 heads, FFN 5120,
128 mel bins; 635 M parameters) built from a config written locally, with
random weights (no download; the weights do not matter for speed), as
``WhisperAudioEncoder`` runs it in training and inference: the log-mel of
the utterance padded to the 30 s window, the encoder on the whole window,
the frames of the real audio kept. One utterance at a time, eval mode,
``torch.no_grad``, fp32; after one warm-up, the median over the repeats,
the real-time factor (seconds / audio seconds) and the peak RSS. Every
utterance up to 30 s costs the same (one window); ``--model small`` times
Whisper-small's encoder instead.

    python benchmarks/whisper_cost.py --threads 2 [--seconds 5] [--repeats 5]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import common
import torch

from speechbrain_mtmm.encoders import build_encoder
from speechbrain_mtmm.testing.tiny_models import (
    WHISPER_LARGE_V3,
    WHISPER_SMALL,
    build_tiny_whisper_encoder,
)

MODELS = {"large-v3": WHISPER_LARGE_V3, "small": WHISPER_SMALL}


def window_gmac(config, mel_frames=3000):
    """Multiply-adds of the encoder on one 30 s window, from its sizes:
    the two convolutions, then per layer the attention projections, the
    attention itself and the feed-forward block."""
    d, ffn = config["d_model"], config["encoder_ffn_dim"]
    frames = mel_frames // 2
    convs = mel_frames * 3 * config["num_mel_bins"] * d + frames * 3 * d * d
    layer = frames * (4 * d * d + 2 * d * ffn) + 2 * frames * frames * d
    return (convs + config["encoder_layers"] * layer) / 1e9


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--model", choices=sorted(MODELS), default="large-v3")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2 repeats")
    parser.add_argument(
        "--work", default=None, help="where the config goes (kept)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats = 2
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="whisper_cost_"))
    folder = work / f"whisper-{args.model}"
    if not (folder / "config.json").is_file():
        build_tiny_whisper_encoder(folder, weights=False, **MODELS[args.model])
    start = time.perf_counter()
    torch.manual_seed(0)
    encoder = build_encoder(
        "audio", str(folder), freeze="frozen", pretrained=False
    ).eval()
    built = time.perf_counter() - start
    params = sum(p.numel() for p in encoder.parameters()) / 1e6
    generator = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(1, int(args.seconds * 16000), generator=generator)
    print(f"machine: {common.machine()}")
    times = []
    with torch.no_grad():
        for _ in range(args.repeats + 1):  # the first one warms up
            start = time.perf_counter()
            frames = encoder(wav).shape[1]
            times.append(time.perf_counter() - start)
    median = statistics.median(times[1:])
    print(
        f"Whisper-{args.model} encoder ({params:.0f} M parameters, random "
        f"weights, built in {built:.1f} s), {args.seconds:g} s utterance "
        f"-> {frames} frames, batch 1, fp32, {args.threads} threads: "
        f"median {median:.2f} s per utterance (min {min(times[1:]):.2f}, "
        f"{args.repeats} repeats; {window_gmac(MODELS[args.model]):.0f} "
        f"GMAC per 30 s window, whatever the length), real-time factor "
        f"{median / args.seconds:.2f}, peak RSS "
        f"{common.peak_memory_mb('cpu'):.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
