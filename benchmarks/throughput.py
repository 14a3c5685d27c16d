"""Training throughput: fixed batches of 16 vs dynamic batching, fp32 vs bf16.

One training epoch of the recipe's model, data pipeline and samplers, all
taken from the recipe and the library as the recipe uses them (the model
built from the recipe YAML's model_config, the recipe's ``dataio_prepare``,
``train_loader_options``, its ``MultiTaskLoss`` and optimizer; the paper's
freeze policy: CNN/embeddings frozen, transformers fine-tuned; Random
Modality Masking off so every step runs both encoders). A step is the
recipe's forward pass (``MultimodalEmotionSystem.encode`` per modality,
then the model), the
loss, backward, clipping and the optimizer step, under ``torch.autocast``
for bf16/fp16 as SpeechBrain's ``Brain`` does it,
over a corpus whose durations follow IEMOCAP's (lognormal, mean 4.5 s,
cropped at 20 s like the recipe), timed after two warm-up steps. Reported
per configuration: utterances/s, audio seconds/s, the fraction of padded
waveform samples, and peak memory (GPU: torch.cuda.max_memory_allocated
during the timed epoch; CPU: peak RSS of the process). Each configuration
runs in its own process.

CPU rows use the tiny random HuBERT + DeBERTa-v2 at the recipe's toy width.
With a GPU, paper-size rows are added: HuBERT-large + DeBERTaV3-large built
from their configs with random weights (no download) at the paper's width,
fp32 with fixed batches of 16 vs bf16 with dynamic batching, and from them
an estimate of one 20-epoch fold and of the 10-fold run.

    python benchmarks/throughput.py --quick     # 48 utterances
    python benchmarks/throughput.py             # 256 utterances
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import common
import torch

CPU_CONFIGS = [
    ("tiny", "fixed16", "fp32"),
    ("tiny", "dynamic", "fp32"),
    ("tiny", "dynamic", "bf16"),
]
GPU_CONFIGS = [
    ("large", "fixed16", "fp32"),
    ("large", "fixed16", "bf16"),
    ("large", "dynamic", "bf16"),
]
# Dynamic batches hold at most this many seconds of padded audio: about 16
# IEMOCAP utterances of the mean length (the recipe's default)
MAX_BATCH_SECONDS = 80.0


def overrides_for(size, batching, corpus, models, out):
    """Recipe overrides of one configuration."""
    overrides = common.tiny_overrides() if size == "tiny" else {}
    overrides.update(
        data_folder=str(corpus),
        prepare_folder=str(corpus),
        output_folder=str(out),
        audio_source=models[0],
        text_source=models[1],
        batch_size=16,
        max_audio_seconds=20.0,
        max_batch_length=MAX_BATCH_SECONDS,
        dynamic_batching=batching == "dynamic",
        modality_masking=False,
    )
    return overrides


def measure(config):
    """Runs in a child process: one timed epoch of one configuration."""
    from speechbrain.dataio.dataloader import make_dataloader

    from speechbrain_mtmm.testing.recipes import load_recipe
    from speechbrain_mtmm.training.batches import train_loader_options
    from speechbrain_mtmm.training.speed import EpochSpeed

    if config["threads"]:
        torch.set_num_threads(config["threads"])
    hparams = common.load_hparams(config["overrides"])
    # the recipe's own data pipelines
    datasets = load_recipe(common.RECIPE).dataio_prepare(hparams)
    device = config["device"]
    system = hparams["system"].to(device).train()
    optimizer = hparams["opt_class"](
        [p for p in system.parameters() if p.requires_grad]
    )
    options, _ = train_loader_options(
        datasets["train"],
        hparams["train_dataloader_opts"],
        hparams["dynamic_batch_sampler"]
        if hparams["dynamic_batching"]
        else None,
        seed=hparams["seed"],
        max_audio_seconds=hparams["max_audio_seconds"],
    )
    if device.startswith("cuda"):
        options = {**options, "num_workers": 4, "pin_memory": True}
    loader = make_dataloader(datasets["train"], **options)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(
        config["precision"]
    )

    def step(batch):
        batch = batch.to(device)
        with torch.autocast(
            device.split(":")[0], dtype=dtype, enabled=dtype is not None
        ):
            audio = system.encode("audio", *batch.sig)
            text = system.encode("text", *batch.tokens)
            out = system(*audio, *text)
        parts = hparams["compute_loss"](
            out["logits"].float(),
            batch.label.data.squeeze(-1),
            out["dims"].float(),
            batch.dims.data,
        )
        optimizer.zero_grad()
        parts["loss"].backward()
        torch.nn.utils.clip_grad_norm_(
            system.parameters(), hparams["max_grad_norm"]
        )
        optimizer.step()

    def epoch(limit=None):
        speed = EpochSpeed(cached=False)
        for index, batch in enumerate(loader):
            if limit is not None and index >= limit:
                break
            speed.count(batch)
            step(batch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return speed

    epoch(limit=2)  # warm-up (allocator, kernels, first file reads)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    speed = epoch()
    seconds = time.perf_counter() - start
    counts = speed.counts  # [padded, total] samples; utterances
    valid_samples = float(counts[0, 1] - counts[0, 0])
    return {
        "utterances": int(counts[2, 0]),
        "seconds": seconds,
        "utt_per_s": float(counts[2, 0]) / seconds,
        "audio_s_per_s": valid_samples / hparams["sample_rate"] / seconds,
        "padding": float(counts[0, 0] / counts[0, 1]),
        "batches": len(loader),
        "peak_mb": common.peak_memory_mb(device),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="48 utterances")
    parser.add_argument("--utterances", type=int, default=256)
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=34.0,
        help="longest corpus utterance (IEMOCAP: 34 s; the recipe crops at "
        "20 s); lower it only to check the code path with little memory",
    )
    common.add_common_arguments(parser)
    args = parser.parse_args(argv)
    if args.child:
        print("RESULT " + json.dumps(measure(json.loads(args.child))))
        return 0
    if args.quick:
        args.utterances = 48
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(args.work or tempfile.mkdtemp(prefix="throughput_"))
    corpus = common.iemocap_like_corpus(
        work / f"corpus{args.utterances}_{args.max_seconds:g}s",
        args.utterances,
        max_seconds=args.max_seconds,
    )
    texts = common.texts_of(corpus)
    configs = [] if args.gpu_only else [(*c, False) for c in CPU_CONFIGS]
    gpu = common.gpu_name()
    if gpu or args.force_cpu:
        configs += [(args.paper_size, *c[1:], True) for c in GPU_CONFIGS]
    print(
        f"throughput: one training epoch of {args.utterances} utterances "
        "with IEMOCAP-like durations (mean 4.5 s), paper freeze policy"
    )
    print(f"machine: {common.machine()}")
    if not gpu:
        common.say_no_gpu("paper-size (HuBERT-large + DeBERTaV3-large) rows")
    rows = []
    for size, batching, precision, gpu_row in configs:
        device = "cuda:0" if gpu_row and gpu else "cpu"
        models = common.encoders(work / "models", texts, size)
        name = f"{size} {batching} {precision}"
        config = {
            "name": name,
            "device": device,
            "precision": precision,
            "threads": args.threads,
            "overrides": overrides_for(
                size, batching, corpus, models, work / "out"
            ),
        }
        figures = common.run_child(__file__, config)
        rows.append((name, device, figures, gpu_row))
        if figures is not None:
            print(f"  {name:24s} {figures['utt_per_s']:8.2f} utt/s", flush=True)

    print(
        f"\n{'configuration':24s}{'device':>8s}{'utt/s':>9s}{'audio s/s':>11s}"
        f"{'padding':>9s}{'batches':>9s}{'peak MB':>10s}"
    )
    for name, device, f, _ in rows:
        if f is None:
            print(f"{name:24s}{device.split(':')[0]:>8s}   failed (see above)")
            continue
        print(
            f"{name:24s}{device.split(':')[0]:>8s}{f['utt_per_s']:9.2f}"
            f"{f['audio_s_per_s']:11.1f}{f['padding']:9.1%}{f['batches']:9d}"
            f"{f['peak_mb']:10.0f}"
        )
    for name, device, f, gpu_row in rows:
        if f is not None and gpu_row:
            fold, total = common.fold_estimate(f["utt_per_s"])
            print(
                f"estimate, {name} ({device}): one 20-epoch IEMOCAP fold "
                f"{common.hours(fold)}, 10 folds {common.hours(total)} "
                "(per seed; training + validation + test, no start-up)"
            )
    if not gpu:
        print("paper-size estimates: not measured (no GPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
