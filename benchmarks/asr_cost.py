"""What ``transcripts: asr`` costs: Whisper-small transcribing IEMOCAP.

Whisper-small (244 M parameters) is built from its published config with
random weights (no download) and transcribes synthetic 4.5 s utterances
(IEMOCAP's mean) in batches, greedy decoding of a fixed 20 tokens per
utterance (a 4.5 s IEMOCAP turn has ~12 words, ~20 Whisper tokens; random
weights would otherwise decode to the length limit): the seconds per
utterance and the estimate for IEMOCAP's 10,039 utterances, computed once
per corpus and then read from the cache by every fold and seed.

    python benchmarks/asr_cost.py --threads 2 [--batch 8] [--utterances 16]
"""

import argparse
import time

import common
import torch
from transformers import (
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
)

IEMOCAP_UTTERANCES = 10039
SMALL = {
    "d_model": 768,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 12,
    "decoder_attention_heads": 12,
    "encoder_ffn_dim": 3072,
    "decoder_ffn_dim": 3072,
    "vocab_size": 51865,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--utterances", type=int, default=16)
    parser.add_argument("--quick", action="store_true", help="8 utterances")
    args = parser.parse_args(argv)
    if args.quick:
        args.utterances = 8
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(WhisperConfig(**SMALL)).eval()
    extractor = WhisperFeatureExtractor()
    wavs = [0.1 * torch.randn(int(4.5 * 16000)) for _ in range(args.utterances)]
    print(f"machine: {common.machine()}, {args.threads} threads")
    start = time.perf_counter()
    for first in range(0, len(wavs), args.batch):
        batch = [w.numpy() for w in wavs[first : first + args.batch]]
        features = extractor(batch, sampling_rate=16000, return_tensors="pt")
        with torch.no_grad():
            model.generate(
                features.input_features,
                min_new_tokens=20,
                max_new_tokens=20,
                do_sample=False,
            )
    per_utterance = (time.perf_counter() - start) / len(wavs)
    hours = per_utterance * IEMOCAP_UTTERANCES / 3600
    print(
        f"Whisper-small, batch {args.batch}, 4.5 s utterances, 20 tokens: "
        f"{per_utterance:.2f} s per utterance; IEMOCAP ({IEMOCAP_UTTERANCES} "
        f"utterances) once: {hours:.1f} h on this CPU"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
