"""Shared helpers of the benchmark scripts (not a library module).

Everything runs offline: corpora are synthetic, encoders are tiny random
HuggingFace models or paper-size models built from their configs with
random weights (same shapes and compute as HuBERT-large/DeBERTaV3-large;
the weights do not matter for speed).
"""

import argparse
import json
import os
import platform
import resource
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the checkout's package, not an install

from speechbrain_mtmm.data.synthetic import (  # noqa: E402
    make_sentence,
    synthesize_utterance,
)
from speechbrain_mtmm.quiet import quiet_third_party  # noqa: E402
from speechbrain_mtmm.testing import recipes  # noqa: E402
from speechbrain_mtmm.testing.tiny_models import (  # noqa: E402
    build_tiny_deberta_v2,
    build_tiny_speech_ssl,
)

RECIPE = REPO / "recipes" / "IEMOCAP" / "multimodal_emotion"
# the figures, not third-party notices (MTMM_VERBOSE=1 keeps them)
quiet_third_party()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# IEMOCAP's 4-class subset: 5531 utterances, mean 4.5 s, median ~3.6 s;
# a lognormal with that mean and median (sigma 0.64) stands in for it.
IEMOCAP_UTTERANCES = 5531
IEMOCAP_MEAN_SECONDS = 4.5
LOGNORMAL_MU, LOGNORMAL_SIGMA = 1.30, 0.64
# Speaker protocol: 8 training speakers, 1 validation, 1 test (of 10)
FOLD_TRAIN, FOLD_VALID, FOLD_TEST = 0.8, 0.1, 0.1


def tiny_overrides():
    """The recipe's hparams/tiny_overrides.yaml as a dict."""
    return recipes.tiny_overrides()


def load_hparams(overrides):
    """The recipe's YAML with ``overrides``: its model (built once from
    its model_config), loss, optimizer and data options."""
    from hyperpyyaml import load_hyperpyyaml

    with open(RECIPE / "hparams" / "iemocap.yaml", encoding="utf-8") as fin:
        return load_hyperpyyaml(fin, overrides)


def gpu_name():
    """The GPU's name, or None."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def machine():
    """One line describing where the figures were measured."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fin:
            for line in fin:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = gpu_name() or "no GPU"
    return (
        f"{cpu}, {os.cpu_count()} cores visible, torch threads "
        f"{torch.get_num_threads()}, {gpu}; torch {torch.__version__}"
    )


def say_no_gpu(what):
    """Prints, loudly, that a GPU measurement is skipped."""
    print(f"\n*** No GPU available: {what} not measured (CPU only). ***\n")


def peak_memory_mb(device):
    """Peak GPU memory allocated (CUDA) or peak RSS of this process."""
    if str(device).startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    # ru_maxrss is in kB on Linux (bytes on macOS)
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def run_child(script, config):
    """Runs ``script --child <config as JSON>`` in a fresh process (so peak
    memory is per configuration); returns the dict it printed, or None
    (with the reason on stderr) when it failed."""
    import subprocess

    env = dict(os.environ, PYTHONPATH=str(REPO))
    if config.get("threads"):
        env["OMP_NUM_THREADS"] = str(config["threads"])
    result = subprocess.run(
        [sys.executable, str(script), "--child", json.dumps(config)],
        capture_output=True,
        text=True,
        env=env,
    )
    for line in result.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    tail = (result.stdout + result.stderr)[-3000:]
    print(
        f"{config['name']} failed (exit code {result.returncode}; -9 is "
        f"usually out of memory):\n{tail}",
        file=sys.stderr,
    )
    return None


def texts_of(prepare_folder):
    """The transcripts of a prepared corpus (tokenizer training)."""
    with open(Path(prepare_folder) / "iemocap.json", encoding="utf-8") as fin:
        return [entry["text"] for entry in json.load(fin).values()]


def tiny_encoders(folder, texts):
    """Tiny random HuBERT + DeBERTa-v2 (the tests' and demo's models)."""
    return recipes.build_tiny_encoders(Path(folder), texts)


# Published sizes of the encoders (HuBERT-large / DeBERTaV3-large as in the
# paper, and the base models); the conv feature extractor is the same 7-layer
# 512-channel CNN in both HuBERTs (group norm in base, layer norm in large).
SIZES = {
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
    "large": {
        "hidden_size": 1024,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "intermediate_size": 4096,
    },
}


def sized_encoders(folder, texts, size="large"):
    """HuBERT and DeBERTaV3 of a published size with random weights.

    Built from configs (no download): HuBERT-``size`` (7-layer 512-channel
    CNN, 128-wide conv positions; large: pre-LN with layer-norm CNN, base:
    post-LN with group-norm CNN) and DeBERTaV3-``size`` (128100-token
    vocabulary, relative attention with 256 buckets). The DeBERTa
    tokenizer is a small sentencepiece model trained on ``texts`` (ids stay
    far below the vocabulary size). Same shapes and compute as the real
    models; the weights do not matter for speed.

    Returns
    -------
    tuple of str
        The audio and text model folders.
    """
    folder = Path(folder)
    audio, text = folder / f"hubert_{size}", folder / f"deberta_v3_{size}"
    large = size == "large"
    if not (audio / "done").exists():
        build_tiny_speech_ssl(
            audio,
            "hubert",
            feat_extract_norm="layer" if large else "group",
            **SIZES[size],
            conv_dim=(512,) * 7,
            conv_kernel=(10, 3, 3, 3, 3, 2, 2),
            conv_stride=(5, 2, 2, 2, 2, 2, 2),
            feat_proj_layer_norm=True,
            num_conv_pos_embeddings=128,
            num_conv_pos_embedding_groups=16,
            layerdrop=0.1,
            vocab_size=32,
        )
        (audio / "done").write_text("ok")
    if not (text / "done").exists():
        # a small tokenizer (ids stay far below the vocabulary size)
        build_tiny_deberta_v2(
            text,
            texts,
            **{
                "hidden_size": SIZES[size]["hidden_size"],
                "num_layers": SIZES[size]["num_hidden_layers"],
                "num_heads": SIZES[size]["num_attention_heads"],
                "intermediate_size": SIZES[size]["intermediate_size"],
            },
            max_position_embeddings=512,
            model_vocab_size=128100,
            position_buckets=256,
            layer_norm_eps=1e-7,
            pad_token_id=0,
        )
        (text / "done").write_text("ok")
    return str(audio), str(text)


def encoders(folder, texts, size):
    """Encoder folders for ``size``: tiny (the tests'), base or large."""
    if size == "tiny":
        return tiny_encoders(folder, texts)
    return sized_encoders(folder, texts, size)


def iemocap_like_corpus(folder, n_utterances, seed=0, max_seconds=34.0):
    """Wavs + fold files whose durations follow IEMOCAP's distribution.

    Durations are lognormal (mean 4.5 s, median 3.6 s, clipped to
    0.6-``max_seconds``), the audio is the synthetic corpus' voiced
    syllables, transcripts have ~2.5 words per second. All utterances go
    to the training split of ``folds/speaker/fold_1`` (valid and test get a
    few), ready for the recipe's ``dataio_prep``.

    Returns
    -------
    pathlib.Path
        The prepare folder.
    """
    from speechbrain.dataio import audio_io

    folder = Path(folder)
    fold = folder / "folds" / "speaker" / "fold_1"
    if (fold / "train.json").exists():
        return folder
    rng = np.random.default_rng(seed)
    (folder / "wav").mkdir(parents=True, exist_ok=True)
    labels = {"neu": "medium", "hap": "high", "sad": "low", "ang": "high"}
    entries = {}
    for i in range(n_utterances):
        seconds = float(
            np.clip(rng.lognormal(LOGNORMAL_MU, LOGNORMAL_SIGMA), 0.6, 34.0)
        )
        seconds = min(seconds, max_seconds)
        emo = list(labels)[i % 4]
        audio = synthesize_utterance(rng, labels[emo], seconds)
        path = folder / "wav" / f"utt{i:05d}.wav"
        audio_io.save(
            str(path), torch.from_numpy(audio / 32768.0)[None].float(), 16000
        )
        words = []
        while len(words) < max(1, round(2.5 * seconds)):
            words += make_sentence(rng, "neutral").split()
        entries[f"utt{i:05d}"] = {
            "wav": str(path),
            "duration": len(audio) / 16000,
            "text": " ".join(words),
            "emo": emo,
            "valence": float(rng.uniform(1, 5)),
            "arousal": float(rng.uniform(1, 5)),
            "dominance": float(rng.uniform(1, 5)),
            "speaker": f"Ses0{1 + i % 5}F",
            "improvised": bool(i % 2),
        }
    ids = list(entries)
    n_eval = max(4, n_utterances // 10)
    splits = {
        "train": ids[: n_utterances - 2 * n_eval],
        "valid": ids[n_utterances - 2 * n_eval : n_utterances - n_eval],
        "test": ids[n_utterances - n_eval :],
    }
    fold.mkdir(parents=True, exist_ok=True)
    for split, keys in splits.items():
        with open(fold / f"{split}.json", "w", encoding="utf-8") as fout:
            json.dump({k: entries[k] for k in keys}, fout)
    with open(folder / "iemocap.json", "w", encoding="utf-8") as fout:
        json.dump(entries, fout)
    return folder


def fold_estimate(train_utt_per_s, epochs=20):
    """Seconds of one IEMOCAP speaker fold and of 10 folds (one seed).

    Training: ``epochs`` passes over the 8 training speakers (80 % of
    5531 utterances) at the measured rate. Validation each epoch and the
    final test are forward passes, counted at 3x the training rate (a
    training step is ~3 forward passes). Excludes start-up and checkpoint
    writing.
    """
    train = FOLD_TRAIN * IEMOCAP_UTTERANCES / train_utt_per_s
    evaluate = FOLD_VALID * IEMOCAP_UTTERANCES / (3 * train_utt_per_s)
    fold = epochs * (train + evaluate) + evaluate
    return fold, 10 * fold


def hours(seconds):
    """``"1.2 h"`` or ``"35 min"``."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def add_common_arguments(parser):
    """The options shared by throughput.py and latency.py."""
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--paper-size",
        default="large",
        choices=["large", "base", "tiny"],
        help="size of the GPU rows' encoders (base, tiny: to check the code "
        "path, e.g. benchmarks/gpu.sh --dry-run)",
    )
    parser.add_argument(
        "--gpu-only",
        action="store_true",
        help="only the GPU (paper-size) rows",
    )
    parser.add_argument(
        "--force-cpu",
        action="store_true",
        help="run the GPU rows on the CPU (slow; checks the code path)",
    )
    parser.add_argument("--work", default=None, help="work folder (kept)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
