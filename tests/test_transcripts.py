"""ASR transcripts as a recipe setting: the cache, the word error rate,
and a fold trained and tested on ASR text, reported beside gold and
audio-only. A tiny random Whisper is built locally (no download)."""

import json
import os
import shutil
import subprocess
import sys

import pytest

from speechbrain_mtmm.data.audio import load_audio
from speechbrain_mtmm.encoders.asr import ASRTranscriber
from speechbrain_mtmm.experiments.ablation import task_table
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV, recipe_command
from speechbrain_mtmm.testing.tiny_models import build_tiny_whisper
from speechbrain_mtmm.training.transcripts import (
    CACHE_FILE,
    TranscriptCache,
    normalize_for_wer,
    word_error_rate,
)


def read_json(path):
    with open(path) as fin:
        return json.load(fin)


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    return build_tiny_whisper(tmp_path_factory.mktemp("asr") / "whisper")


@pytest.fixture(scope="module")
def wavs(synthetic_prepared):
    """Six utterances of the synthetic corpus: id -> wav."""
    manifest = read_json(synthetic_prepared / "iemocap.json")
    return {utt: entry["wav"] for utt, entry in list(manifest.items())[:6]}


class Counting:
    """An ASR transcriber that counts what it transcribes and can fail
    after a number of batches (a run killed while caching)."""

    def __init__(self, transcriber, fail_after=None):
        self.inner = transcriber
        self.fail_after = fail_after
        self.transcribed = 0
        self.batches = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def transcribe(self, wavs):
        if self.fail_after is not None and self.batches == self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches += 1
        self.transcribed += len(wavs)
        return self.inner.transcribe(wavs)


def test_the_cache_key_follows_the_model_and_its_decoding_not_its_folder(
    whisper, tmp_path
):
    key = ASRTranscriber(whisper).fingerprint()
    copy = tmp_path / "elsewhere"
    shutil.copytree(whisper, copy)
    assert ASRTranscriber(copy).fingerprint() == key
    other = build_tiny_whisper(tmp_path / "other", seed=1)
    assert ASRTranscriber(other).fingerprint() != key
    beams = ASRTranscriber(whisper, generate_kwargs={"num_beams": 2})
    assert beams.fingerprint() != key


def test_cached_transcripts_equal_a_fresh_run(whisper, wavs, tmp_path):
    transcriber = ASRTranscriber(whisper, batch_size=4)
    cached = TranscriptCache(tmp_path, transcriber).transcribe(wavs, False)
    again = Counting(transcriber)
    served = TranscriptCache(tmp_path, again).transcribe(wavs, False)
    fresh = ASRTranscriber(whisper, batch_size=1).transcribe(
        [load_audio(wav) for wav in wavs.values()]
    )
    assert served == cached and again.transcribed == 0
    assert list(cached.values()) == fresh


def test_a_killed_caching_run_resumes_without_recomputing(
    whisper, wavs, tmp_path
):
    transcriber = ASRTranscriber(whisper, batch_size=2)
    killed = Counting(transcriber, fail_after=1)
    with pytest.raises(KeyboardInterrupt):
        TranscriptCache(tmp_path, killed).transcribe(wavs, False)
    cache = TranscriptCache(tmp_path, transcriber)
    assert len(read_json(cache.path)) == 2  # the first batch was kept
    resumed = Counting(transcriber)
    TranscriptCache(tmp_path, resumed).transcribe(wavs, False)
    assert resumed.transcribed == len(wavs) - 2


def test_a_changed_audio_file_is_transcribed_again_with_its_batch(
    whisper, wavs, tmp_path
):
    """The batches are fixed (4 at a time over the sorted ids): the one
    holding the changed file is transcribed again, whole; not the other."""
    files = {}
    for utt, wav in wavs.items():
        files[utt] = tmp_path / f"{utt}.wav"
        shutil.copy(wav, files[utt])
    transcriber = ASRTranscriber(whisper, batch_size=4)
    TranscriptCache(tmp_path / "cache", transcriber).transcribe(files, False)
    last, other = sorted(files)[-1], sorted(files)[0]
    shutil.copy(wavs[other], files[last])
    again = Counting(transcriber)
    TranscriptCache(tmp_path / "cache", again).transcribe(files, False)
    assert again.batches == 1 and again.transcribed == len(files) - 4


def test_the_word_error_rate_of_a_hand_counted_case():
    """Reference 'the cat sat on the mat' (6 words), hypothesis 'The cat
    SIT on mat!': one substitution and one deletion, 2 / 6."""
    wer = word_error_rate(
        ["u1"], ["The cat SIT on mat!"], ["the cat sat on the mat"]
    )
    assert wer["WER"] == pytest.approx(100 * 2 / 6)
    assert (wer["substitutions"], wer["deletions"], wer["words"]) == (1, 1, 6)


# ------------------------------------------------------------ the recipe


@pytest.fixture(scope="module")
def asr_sweep(
    tmp_path_factory, synthetic_corpus, synthetic_prepared, whisper, recipe
):
    """``mtmm cv`` of one fold trained on ASR transcripts and tested with
    ASR, gold and no transcripts."""
    work = tmp_path_factory.mktemp("asr_sweep")
    prepared = work / "prepared"
    shutil.copytree(synthetic_prepared, prepared)
    command = recipe_command(
        recipe,
        synthetic_corpus / "IEMOCAP_full_release",
        prepared,
        "unused",
        "fbank",
        "hashing",
        {
            "number_of_epochs": 2,
            "transcripts": "asr",
            "test_transcripts": "[asr,gold,none]",
            "asr_source": str(whisper),
            "asr_language": "null",
        },
    )
    overrides = [a for a in command[3:] if not a.startswith("--output_folder")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "speechbrain_mtmm",
            "cv",
            str(recipe / "hparams" / "iemocap.yaml"),
            "--protocol=speaker",
            "--folds",
            "1",
            "--seeds",
            "1",
            "--output",
            str(work / "sweep"),
            *overrides,
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, **OFFLINE_ENV),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return work / "sweep", prepared


@pytest.mark.slow
def test_a_fold_on_asr_transcripts_writes_wer_beside_the_emotion_scores(
    asr_sweep,
):
    sweep, prepared = asr_sweep
    results = read_json(sweep / "speaker_fold1" / "seed1" / "test_results.json")
    assert results["test_transcripts"] == "asr"
    assert list(results["conditions"]) == ["asr", "gold", "none"]
    for scores in results["conditions"].values():
        assert scores["n"] == results["n"] and 0 <= scores["WA"] <= 1
    test = read_json(prepared / "folds" / "speaker" / "fold_1" / "test.json")
    words = sum(len(normalize_for_wer(e["text"])) for e in test.values())
    assert results["WER"]["all"]["words"] == words
    (cache,) = (prepared / "asr").glob(f"*/{CACHE_FILE}")
    asr = {u: e["text"] for u, e in read_json(cache).items()}
    expected = word_error_rate(
        list(test), [asr[u] for u in test], [e["text"] for e in test.values()]
    )
    assert results["WER"]["all"]["WER"] == pytest.approx(expected["WER"])


@pytest.mark.slow
def test_the_cv_report_puts_gold_asr_and_audio_only_side_by_side(asr_sweep):
    sweep, _ = asr_sweep
    report = (sweep / "report.md").read_text()
    assert "## Gold vs ASR vs no transcripts" in report
    for row in (
        "| ASR transcripts |",
        "| gold transcripts |",
        "| audio only (text masked) |",
    ):
        assert row in report
    cv = read_json(sweep / "cv_results.json")
    assert list(cv["transcripts"]) == ["asr", "gold", "none"]
    assert cv["WER"]["all"]["mean"] == pytest.approx(
        read_json(sweep / "speaker_fold1" / "seed1" / "test_results.json")[
            "WER"
        ]["all"]["WER"]
    )


def test_the_ablation_table_gains_an_asr_column_with_the_wer():
    def summary(value):
        return {"mean": value, "std_seeds": None, "std_folds": None}

    metrics = ("UA", "WA", "CCC_valence", "CCC_arousal")
    results = {
        "summary": {"all": {m: summary(0.7) for m in metrics}},
        "transcripts": {
            "gold": {m: summary(0.7) for m in metrics},
            "asr": {m: summary(0.6) for m in metrics},
        },
        "WER": {"all": summary(23.4)},
    }
    table = task_table("multi", ["masking"], {("masking", "multi"): results})
    header, _, row = table.splitlines()
    assert "UAR ours, ASR" in header and header.endswith("| WER % |")
    assert "| 70.00 ± n/a | 60.00 ± n/a |" in row and row.endswith("| 23.4 |")
