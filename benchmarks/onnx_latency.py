"""CPU inference of one utterance: PyTorch fp32 vs ONNX fp32 vs ONNX int8.

The paper's model at full size (HuBERT-large + DeBERTaV3-large built from
their configs with random weights, no download; the recipe's
refinement, bridge-token fusion and heads) is exported with
:func:`~speechbrain_mtmm.sharing.onnx_export.export_onnx` (three graphs,
``--int8`` quantized), then each backend predicts a 5 s utterance with a
12-word transcript through ``MultimodalEmotionRecognizer`` (tokenisation
included, file reading excluded), one at a time, after a warm-up: the
median latency over the repeats. Then ``--agreement`` synthetic
utterances (1.5-5 s) are predicted by all three: the class agreement of
each ONNX backend with PyTorch fp32 and the largest probability
difference. Also: DeBERTaV3-large alone on 20 tokens with and without the
narrowed relative-position table (``narrow_relative_positions``).

    python benchmarks/onnx_latency.py --quick --threads 2  # base size
    python benchmarks/onnx_latency.py --threads 2          # ~15 min
    python benchmarks/onnx_latency.py --threads 2 --work /tmp/onnx_bench
"""

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import common
import numpy as np
import torch

from speechbrain_mtmm.data.synthetic import make_sentence, synthesize_utterance
from speechbrain_mtmm.inference.onnx_runtime import OnnxSystem
from speechbrain_mtmm.inference.recognizer import MultimodalEmotionRecognizer
from speechbrain_mtmm.sharing.onnx_export import export_onnx
from speechbrain_mtmm.system import PAPER_CONFIG, MultimodalEmotionSystem

HPARAMS = {"max_audio_seconds": 20.0, "long_audio": "chunk", "batch_size": 1}


def utterance(seconds, words, seed=0):
    """A synthetic waveform and a transcript of ``words`` words."""
    rng = np.random.default_rng(seed)
    wav = synthesize_utterance(rng, "medium", seconds) / 32768.0
    text = []
    while len(text) < words:
        text += make_sentence(rng, "neutral").split()
    return torch.from_numpy(wav).float(), " ".join(text[:words])


def latency(recognizer, wav, text, repeats):
    """Median seconds of one prediction, after one warm-up."""
    recognizer.predict_batch(wav[None], None, [text])
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        recognizer.predict_batch(wav[None], None, [text])
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def deberta_rows(system, repeats):
    """DeBERTa alone on 20 tokens, whole vs narrowed position table."""
    encoder = system.text_encoder
    _, text = utterance(1.0, 20)
    tokens = encoder.tokenize(text)[None]
    lens = torch.ones(1)
    rows = {}
    for narrow in (False, True):
        encoder.narrow_positions = narrow
        with torch.no_grad():
            encoder(tokens, lens)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                encoder(tokens, lens)
                times.append(time.perf_counter() - start)
        rows[narrow] = statistics.median(times)
    encoder.narrow_positions = True
    return tokens.shape[1], rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--agreement", type=int, default=100)
    parser.add_argument("--size", default="large", help="large or base")
    parser.add_argument("--work", default=None, help="work folder (kept)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="base-size models, 2 repeats, 10 utterances (a few minutes)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.repeats, args.agreement = "base", 2, 10
    torch.set_num_threads(args.threads)
    work = Path(args.work or tempfile.mkdtemp(prefix="onnx_bench_"))
    texts = [utterance(5.0, 40, seed)[1] for seed in range(8)]
    audio, text = common.sized_encoders(work / "models", texts, args.size)
    config = copy.deepcopy(PAPER_CONFIG)
    config["audio"]["source"], config["text"]["source"] = audio, text
    torch.manual_seed(0)
    system = MultimodalEmotionSystem(config, freeze="frozen").eval()
    print(f"machine: {common.machine()}, {args.threads} threads")

    tokens, deberta = deberta_rows(system, args.repeats)
    print(
        f"DeBERTaV3-{args.size}, {tokens} tokens: whole position table "
        f"{deberta[False]:.2f} s, narrowed {deberta[True]:.2f} s "
        f"({deberta[False] / deberta[True]:.1f}x)"
    )

    folder = work / "model"
    start = time.perf_counter()
    info = export_onnx(folder, system, int8=True)
    print(
        f"ONNX export + int8 quantization: {time.perf_counter() - start:.0f}"
        f" s; ONNX vs torch probabilities/dimensions within "
        f"{info['max_abs_difference']['end_to_end']:.1e}"
    )
    recognizers = {
        "PyTorch fp32": MultimodalEmotionRecognizer(
            {"system": system}, dict(HPARAMS), run_opts={"device": "cpu"}
        ),
    }
    for name, int8 in (("ONNX fp32", False), ("ONNX int8", True)):
        onnx = OnnxSystem(folder, config, int8, threads=args.threads)
        recognizers[name] = MultimodalEmotionRecognizer(
            {"system": onnx}, dict(HPARAMS), run_opts={"device": "cpu"}
        )

    wav, sentence = utterance(5.0, 12)
    seconds = {
        name: latency(recognizer, wav, sentence, args.repeats)
        for name, recognizer in recognizers.items()
    }
    rng = np.random.default_rng(1)
    inputs = [
        utterance(float(rng.uniform(1.5, 5.0)), int(rng.integers(4, 20)), i)
        for i in range(args.agreement)
    ]
    predictions = {
        name: [model.predict_batch(w[None], None, [t])[0] for w, t in inputs]
        for name, model in recognizers.items()
    }
    reference = predictions["PyTorch fp32"]
    print(
        f"\n| backend | 5 s + 12 words, median of {args.repeats} | vs "
        f"PyTorch fp32 | class agreement ({args.agreement} utts) | max "
        "prob. difference |"
    )
    print("|---|---|---|---|---|")
    for name, results in predictions.items():
        agree = np.mean(
            [a["label"] == b["label"] for a, b in zip(results, reference)]
        )
        worst = max(
            abs(a["probs"][k] - b["probs"][k])
            for a, b in zip(results, reference)
            for k in a["probs"]
        )
        ratio = seconds["PyTorch fp32"] / seconds[name]
        print(
            f"| {name} | {seconds[name]:.2f} s | {ratio:.2f}x | "
            f"{100 * agree:.0f}% | {worst:.1e} |"
        )
    patterns = {"fp32": "onnx/*.onnx*", "int8": "onnx/int8/*.onnx*"}
    sizes = {
        kind: sum(p.stat().st_size for p in folder.glob(pattern)) / 2**20
        for kind, pattern in patterns.items()
    }
    print(
        f"\ngraphs on disk: fp32 {sizes['fp32']:.0f} MiB, int8 "
        f"{sizes['int8']:.0f} MiB; work folder {work}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
