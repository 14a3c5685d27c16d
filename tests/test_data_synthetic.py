"""Specification of the synthetic IEMOCAP-shaped corpus (data.synthetic)."""

import hashlib
import json
import re

import numpy as np
import pytest
from speechbrain.dataio import audio_io

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.synthetic import (
    RELEASE_DIRNAME,
    SUMMARY_NAME,
    WORDS,
    generate_synthetic_iemocap,
)

CODES = {"neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis"}
CODES |= {"oth", "xxx"}


def main(args):
    return mtmm(["synth", *args])


def _tree_digest(folder):
    """sha256 over the relative paths and bytes of every file."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


@pytest.fixture(scope="module")
def generated(synthetic_corpus):
    with open(synthetic_corpus / SUMMARY_NAME, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def release(synthetic_corpus):
    return synthetic_corpus / RELEASE_DIRNAME


def _wav(release, utt):
    dialog = utt.rsplit("_", 1)[0]
    session = f"Session{int(utt[4])}"
    return release / session / "sentences" / "wav" / dialog / f"{utt}.wav"


def _utterances_with(generated, codes):
    return [
        utt
        for utt, record in sorted(generated["utterances"].items())
        if record["emo_raw"] in codes
    ]


def test_same_seed_gives_identical_files(tmp_path):
    generate_synthetic_iemocap(tmp_path / "a", seed=3, utterances_per_dialog=4)
    generate_synthetic_iemocap(tmp_path / "b", seed=3, utterances_per_dialog=4)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_other_seed_gives_other_files(tmp_path, synthetic_corpus):
    generate_synthetic_iemocap(tmp_path, seed=1, utterances_per_dialog=4)
    assert _tree_digest(tmp_path) != _tree_digest(synthetic_corpus)


def test_size_sets_the_number_of_utterances(generated):
    assert generated["total_utterances"] == 5 * 5 * 4


def test_too_small_size_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="too small"):
        generate_synthetic_iemocap(tmp_path, utterances_per_dialog=2)


def test_release_has_five_sessions_and_ten_speakers(release, generated):
    assert sorted(p.name for p in release.iterdir()) == [
        f"Session{k}" for k in range(1, 6)
    ]
    assert sorted(generated["speaker_counts"]) == [
        f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"
    ]


def test_improvised_lettered_and_scripted_dialogs_exist(release):
    dialogs = {
        p.stem for p in release.glob("Session*/dialog/transcriptions/*.txt")
    }
    assert "Ses01F_impro01" in dialogs
    assert "Ses03M_impro05a" in dialogs
    assert "Ses03F_impro08b" in dialogs
    assert "Ses01F_script01_1" in dialogs


def test_both_genders_speak_in_every_dialog(generated):
    crossed = 0
    for utt in generated["utterances"]:
        assert re.fullmatch(r"Ses0[1-5][FM]_\w+_[FM]\d{3}", utt)
        crossed += utt[5] != utt[-4]
    assert crossed == len(generated["utterances"]) // 2


def test_every_category_code_appears(generated):
    assert set(generated["raw_counts"]) == CODES


def test_every_speaker_has_every_kept_class(generated):
    for speaker in generated["speaker_counts"]:
        emos = {
            r["emo_raw"]
            for r in generated["utterances"].values()
            if r["speaker"] == speaker
        }
        assert {"neu", "hap", "exc", "sad", "ang"} <= emos, speaker


def test_evaluation_folder_holds_rater_subfolders_and_hidden_file(release):
    evaluation = release / "Session2" / "dialog" / "EmoEvaluation"
    names = {p.name for p in evaluation.iterdir()}
    assert {"Categorical", "Attribute", "Self-evaluation"} <= names
    assert "._Ses02F_impro01.txt" in names
    header = (evaluation / "Ses02F_impro01.txt").read_text().splitlines()[0]
    assert header.startswith("% [START_TIME - END_TIME]")


def test_transcriptions_contain_lines_that_are_not_utterances(release):
    path = release / "Session1" / "dialog" / "transcriptions"
    lines = (path / "Ses01F_impro01.txt").read_text().splitlines()
    assert "M: [BREATHING]" in lines
    assert any("_MXX0 [" in line for line in lines)


def test_wavs_are_16k_mono_16bit_and_1_to_2_5_seconds(release, generated):
    for utt in list(generated["utterances"])[:10]:
        info = audio_io.info(str(_wav(release, utt)))
        assert (info.sample_rate, info.num_channels) == (16000, 1)
        assert info.subtype == "PCM_16"
        assert 1.0 <= info.duration <= 2.5


def test_words_carry_valence(generated):
    expected = {"neu": "neutral", "hap": "positive", "exc": "positive"}
    expected.update({"sad": "negative", "ang": "negative"})
    for record in generated["utterances"].values():
        if record["emo_raw"] not in expected:
            continue
        words = {w.strip(".").lower() for w in record["text"].split()}
        for polarity, vocabulary in WORDS.items():
            present = bool(words & set(vocabulary))
            assert present == (polarity == expected[record["emo_raw"]])


def _loudness_and_pitch(path):
    """RMS and the strongest spectral peak between 80 and 400 Hz."""
    audio = audio_io.load(str(path))[0][0].numpy()
    spectrum = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    band = (freqs > 80) & (freqs < 400)
    return np.sqrt(np.mean(audio**2)), freqs[band][spectrum[band].argmax()]


def test_prosody_separates_angry_from_sad(release, generated):
    sad = [
        _loudness_and_pitch(_wav(release, u))
        for u in _utterances_with(generated, {"sad"})
    ]
    angry = [
        _loudness_and_pitch(_wav(release, u))
        for u in _utterances_with(generated, {"ang"})
    ]
    assert max(r for r, _ in sad) < min(r for r, _ in angry)
    assert max(f for _, f in sad) < min(f for _, f in angry)


def test_ratings_follow_words_for_valence_and_prosody_for_arousal(generated):
    def mean(codes, key):
        values = [
            r[key]
            for r in generated["utterances"].values()
            if r["emo_raw"] in codes
        ]
        return np.mean(values)

    assert mean({"hap", "exc"}, "valence") > mean({"neu"}, "valence")
    assert mean({"neu"}, "valence") > mean({"sad", "ang"}, "valence")
    assert mean({"ang"}, "arousal") > mean({"neu"}, "arousal")
    assert mean({"neu"}, "arousal") > mean({"sad"}, "arousal")
    for record in generated["utterances"].values():
        for key in ("valence", "arousal", "dominance"):
            assert 1.0 <= record[key] <= 5.0


def test_cli_writes_the_release_and_its_summary(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--size", "4", "--seed", "2"]) == 0
    assert (tmp_path / RELEASE_DIRNAME / "Session5").is_dir()
    assert (tmp_path / SUMMARY_NAME).is_file()
    assert "100 utterances" in capsys.readouterr().out


@pytest.mark.parametrize("corpus", ["iemocap", "msp-podcast", "csv"])
def test_a_size_that_is_neither_named_nor_a_number_is_refused(
    corpus, tmp_path, capsys
):
    code = main(["--out", str(tmp_path), "--corpus", corpus, "--size", "x"])
    assert code == 2
    error = capsys.readouterr().err
    assert f"--size for {corpus}: tiny, small, default or a number" in error
    assert not any(tmp_path.iterdir())
