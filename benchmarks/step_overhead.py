"""Training-step overhead over the bare encoders, at paper size.

Measured in one run, on the same batch, alternating: (a) the bare
HuggingFace encoders (HuBERT-large and DeBERTaV3-large built from their
configs, random weights) forward + backward with the paper's freeze
policy (CNN feature extractor and embeddings frozen); (b) the recipe's
training step: the same encoders through ``MultimodalEmotionSystem``
(waveform normalisation, padding masks, exact output lengths), the
self-attention refinement, bridge-token fusion and heads at the paper's
width, the multi-task loss, backward, gradient clipping and the Adam
step. The ratio (b)/(a) is what the toolkit adds to fine-tuning; its
limit is 1.0, the target <= 1.10.

    python benchmarks/step_overhead.py --threads 2          # CPU, paper size
    python benchmarks/step_overhead.py --size base --quick  # smaller check
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common
import torch
from speechbrain.utils.data_utils import batch_pad_right

PAPER_WIDTH = {
    "d_model": 1024,
    "n_heads": 32,
    "refinement_ffn": 2048,
    "bridge_tokens": 30,
}


def batch(seconds=(4.0, 3.2)):
    """Two utterances of different lengths and their transcripts."""
    torch.manual_seed(0)
    wavs = [torch.randn(int(s * 16000)) * 0.1 for s in seconds]
    texts = ["I really did not expect that, thank you.", "Oh no, not again."]
    return wavs, texts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--size", default="large", choices=["large", "base", "tiny"]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 repeat")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--work", default=None, help="work folder (kept)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = 1 if args.quick else args.repeats
    work = Path(args.work or tempfile.mkdtemp(prefix="step_overhead_"))
    texts = ["I really did not expect that, thank you so much."] * 4
    audio_source, text_source = common.encoders(
        work / "models", texts, args.size
    )
    hparams = common.load_hparams(
        {
            "data_folder": str(work),
            "audio_source": audio_source,
            "text_source": text_source,
            **PAPER_WIDTH,
        }
    )
    system = hparams["system"].to(args.device).train()
    # the recipe's optimizer (Adam, fused), over what the paper fine-tunes
    optimizer = hparams["opt_class"](
        [p for p in system.parameters() if p.requires_grad]
    )
    wavs, transcripts = batch()
    wav, wav_lens = batch_pad_right(wavs)
    tokens, token_lens = batch_pad_right(
        [system.text_encoder.tokenize(t) for t in transcripts]
    )
    wav, wav_lens = wav.to(args.device), wav_lens.to(args.device)
    tokens, token_lens = tokens.to(args.device), token_lens.to(args.device)
    labels = torch.tensor([0, 1], device=args.device)
    dims = torch.rand(2, 2, device=args.device)

    def bare():
        # the HF models themselves, as a plain fine-tuning loop runs them
        audio_mask = (
            torch.arange(wav.shape[1], device=args.device)[None]
            < (wav_lens * wav.shape[1])[:, None]
        ).long()
        text_mask = (
            torch.arange(tokens.shape[1], device=args.device)[None]
            < (token_lens * tokens.shape[1]).round()[:, None]
        ).long()
        a = system.audio_encoder.model(wav, attention_mask=audio_mask)
        t = system.text_encoder.model(
            input_ids=tokens, attention_mask=text_mask
        )
        (a.last_hidden_state.sum() + t.last_hidden_state.sum()).backward()
        system.zero_grad(set_to_none=True)

    def ours(update=True):
        audio = system.encode("audio", wav, wav_lens)
        text = system.encode("text", tokens, token_lens)
        out = system(*audio, *text)
        parts = hparams["compute_loss"](
            out["logits"], labels, out["dims"], dims
        )
        parts["loss"].backward()
        if update:
            torch.nn.utils.clip_grad_norm_(system.parameters(), 1.0)
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def ours_without_update():
        ours(update=False)

    def timed(step):
        start = time.perf_counter()
        step()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    print(
        f"step_overhead: {args.size} HuBERT + DeBERTaV3 (random weights, "
        f"paper freeze policy), paper-width model, batch of 2 utterances "
        f"(4.0 s, 3.2 s) and transcripts of {tokens.shape[1]} tokens"
    )
    print(f"machine: {common.machine()}")
    timed(bare), timed(ours)  # warm-up
    steps = {
        "bare": bare,
        "ours": ours,
        "forward_backward": ours_without_update,
    }
    times = {name: [] for name in steps}
    load_before = os.getloadavg()[0]
    for _ in range(repeats):
        for name, step in steps.items():
            times[name].append(timed(step))
    load_after = os.getloadavg()[0]
    bare_s = statistics.median(times["bare"])
    ours_s = statistics.median(times["ours"])
    fb_s = statistics.median(times["forward_backward"])
    # each repeat times the three steps back to back: the median of the
    # per-repeat ratios is less moved by the machine's load than the ratio
    # of the medians
    ratio = statistics.median(
        o / b for o, b in zip(times["ours"], times["bare"])
    )
    fb_ratio = statistics.median(
        f / b for f, b in zip(times["forward_backward"], times["bare"])
    )
    trainable = sum(p.numel() for p in system.model.parameters()) / 1e6
    print(
        f"bare encoders forward+backward: {bare_s:.2f} s (median of "
        f"{repeats}); our training step: {ours_s:.2f} s; ratio "
        f"{ratio:.3f} (median per repeat; target <= 1.10); refinement + "
        f"fusion + heads: {trainable:.1f} M parameters"
    )
    print(
        f"our forward+backward without clipping and the Adam step: "
        f"{fb_s:.2f} s, ratio {fb_ratio:.3f} (the update itself: "
        f"{ours_s - fb_s:.2f} s)"
    )
    print(
        f"load average {load_before:.1f} before, {load_after:.1f} after: "
        "above the thread count, other processes shared the cores and the "
        "ratios are not to be trusted"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
