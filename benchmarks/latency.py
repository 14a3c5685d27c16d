"""Inference latency per utterance (batch of one), and peak memory.

What a user of an exported model runs: ``MultimodalEmotionRecognizer``
(``predict_batch``, eval mode, ``torch.no_grad`` and the given precision)
over the model the recipe YAML describes (encoders, exact output lengths,
layer sums, refinement, fusion, heads), one utterance at a time, from a
waveform and a transcript already in memory (file reading excluded,
tokenisation included) to class probabilities and valence/arousal.
Utterances of 2, 5, 10 and 20 s with ~2.5 words per second; after warm-up,
the median and 90th percentile over the repeats and the real-time factor
(latency / duration). Each configuration runs in its own process; peak
memory is torch.cuda.max_memory_allocated on GPU, the peak RSS of the
process on CPU.

CPU: the tiny random HuBERT + DeBERTa-v2. With a GPU, also HuBERT-large +
DeBERTaV3-large built from their configs with random weights (no download)
in fp32 and bf16.

    python benchmarks/latency.py --quick        # 2 and 5 s, 5 repeats
    python benchmarks/latency.py                # 2, 5, 10, 20 s, 20 repeats
"""

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch

from speechbrain_mtmm.data.synthetic import (
    make_sentence,
    synthesize_utterance,
)

CPU_CONFIGS = [("tiny", "fp32")]
GPU_CONFIGS = [("large", "fp32"), ("large", "bf16")]


def utterance(seconds, seed=0):
    """A synthetic waveform of ``seconds`` and a transcript to match."""
    rng = np.random.default_rng(seed)
    wav = synthesize_utterance(rng, "medium", seconds) / 32768.0
    words = []
    while len(words) < max(1, round(2.5 * seconds)):
        words += make_sentence(rng, "neutral").split()
    return torch.from_numpy(wav).float(), " ".join(words)


def measure(config):
    """Runs in a child process: latencies of one configuration."""
    from speechbrain_mtmm.inference.recognizer import (
        MultimodalEmotionRecognizer,
    )

    if config["threads"]:
        torch.set_num_threads(config["threads"])
    hparams = common.load_hparams(config["overrides"])
    device = config["device"]
    recognizer = MultimodalEmotionRecognizer(
        {"system": hparams["system"]},
        {"max_audio_seconds": None, "long_audio": "chunk", "batch_size": 1},
        run_opts={"device": device, "precision": config["precision"]},
    )

    def infer(wav, text):
        result = recognizer.predict_batch(wav[None], None, [text])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return result

    results = {}
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    for seconds in config["durations"]:
        wav, text = utterance(seconds)
        for _ in range(config["warmup"]):
            infer(wav, text)
        times = []
        for _ in range(config["repeats"]):
            start = time.perf_counter()
            infer(wav, text)
            times.append(time.perf_counter() - start)
        times.sort()
        median = statistics.median(times)
        results[str(seconds)] = {
            "median_ms": 1000 * median,
            "p90_ms": 1000 * times[int(0.9 * (len(times) - 1))],
            "rtf": median / seconds,
        }
    results["peak_mb"] = common.peak_memory_mb(device)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument(
        "--durations",
        type=float,
        nargs="+",
        default=None,
        help="seconds of audio (default 2 5 10 20; --quick: 2 5)",
    )
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(measure(json.loads(args.child))))
        return 0
    durations = [2.0, 5.0, 10.0, 20.0]
    if args.quick:
        durations, args.repeats = [2.0, 5.0], 5
    durations = args.durations or durations
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(args.work or tempfile.mkdtemp(prefix="latency_"))
    texts = [utterance(20.0, seed)[1] for seed in range(8)]
    configs = [] if args.gpu_only else [(*c, False) for c in CPU_CONFIGS]
    gpu = common.gpu_name()
    if gpu or args.force_cpu:
        configs += [(args.paper_size, *c[1:], True) for c in GPU_CONFIGS]
    print(
        "latency: one utterance at a time, waveform + transcript in memory "
        f"-> classes + valence/arousal; {args.repeats} repeats after warm-up"
    )
    print(f"machine: {common.machine()}")
    if not gpu:
        common.say_no_gpu("paper-size (HuBERT-large + DeBERTaV3-large) rows")
    rows = []
    for size, precision, gpu_row in configs:
        device = "cuda:0" if gpu_row and gpu else "cpu"
        models = common.encoders(work / "models", texts, size)
        overrides = common.tiny_overrides() if size == "tiny" else {}
        overrides.update(
            data_folder=str(work),
            output_folder=str(work / "out"),
            audio_source=models[0],
            text_source=models[1],
            max_audio_seconds=20.0,
        )
        name = f"{size} {precision} {device.split(':')[0]}"
        figures = common.run_child(
            __file__,
            {
                "name": name,
                "device": device,
                "precision": precision,
                "threads": args.threads,
                "durations": durations,
                "warmup": 3,
                "repeats": args.repeats,
                "overrides": overrides,
            },
        )
        if figures is not None:
            rows.append((name, figures))
            print(f"  {name} done", flush=True)
    print(
        f"\n{'configuration':20s}{'audio':>7s}{'median ms':>11s}"
        f"{'p90 ms':>9s}{'RTF':>8s}{'peak MB':>9s}"
    )
    for name, figures in rows:
        for d in durations:
            f = figures[str(d)]
            print(
                f"{name:20s}{d:6.0f}s{f['median_ms']:11.1f}{f['p90_ms']:9.1f}"
                f"{f['rtf']:8.3f}{figures['peak_mb']:9.0f}"
            )
    if not gpu:
        print("paper-size latency: not measured (no GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
