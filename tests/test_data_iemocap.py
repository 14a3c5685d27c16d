"""Specification of the IEMOCAP preparation (speechbrain_mtmm.data.iemocap).

The reference for counts, labels and ratings is the synthetic generator's
own record of what it wrote (``generator_summary.json``), not the parser.
"""

import json
import os
import shutil

import pytest
import torch
from speechbrain.dataio import audio_io

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data import iemocap
from speechbrain_mtmm.data.audio import AudioFileError
from speechbrain_mtmm.data.iemocap import (
    IEMOCAPFormatError,
    IEMOCAPMissingFilesError,
    parse_evaluation,
    prepare_iemocap,
    speaker_of,
)
from speechbrain_mtmm.data.synthetic import RELEASE_DIRNAME, SUMMARY_NAME

MANIFEST_FIELDS = {
    "wav",
    "duration",
    "speaker",
    "session",
    "gender",
    "dialog",
    "improvised",
    "emo",
    "emo_raw",
    "valence",
    "arousal",
    "dominance",
    "text",
}
OTHER_CODES = ("fru", "sur", "fea", "dis", "oth", "xxx")


def main(args):
    return mtmm(["prepare", *args])


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def generated(synthetic_corpus):
    """What the generator says it wrote."""
    return _load(synthetic_corpus / SUMMARY_NAME)


@pytest.fixture(scope="module")
def manifest(synthetic_prepared):
    return _load(synthetic_prepared / "iemocap.json")


@pytest.fixture(scope="module")
def summary(synthetic_prepared):
    return _load(synthetic_prepared / "summary.json")


@pytest.fixture
def release_copy(synthetic_corpus, tmp_path):
    """A private, modifiable copy of the synthetic release."""
    target = tmp_path / RELEASE_DIRNAME
    shutil.copytree(synthetic_corpus / RELEASE_DIRNAME, target)
    return target


def _kept_utterance(generated, code="neu"):
    """The first (sorted) utterance with raw code ``code``."""
    utterances = generated["utterances"]
    return sorted(u for u in utterances if utterances[u]["emo_raw"] == code)[0]


def _utterance_paths(release, utt):
    """wav, transcription and evaluation paths of an utterance."""
    session = f"Session{int(utt[4])}"
    dialog = utt.rsplit("_", 1)[0]
    dialog_dir = release / session / "dialog"
    return (
        release / session / "sentences" / "wav" / dialog / f"{utt}.wav",
        dialog_dir / "transcriptions" / f"{dialog}.txt",
        dialog_dir / "EmoEvaluation" / f"{dialog}.txt",
    )


def _rewrite_line(path, utt, new_line):
    """Replaces the line of ``path`` that starts with ``utt``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(utt))
    lines[index] = new_line
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


# --------------------------------------------------------------- counts


def test_class_counts_equal_generator_counts(summary, generated):
    assert summary["class_counts"] == generated["class_counts_4class"]
    assert summary["utterances"] == generated["kept_utterances_4class"]


def test_speaker_counts_equal_generator_counts(summary, generated):
    assert summary["speaker_counts"] == generated["speaker_counts_4class"]


def test_improvised_counts_equal_generator_counts(summary, generated):
    assert summary["improvised_counts"] == generated["improvised_counts_4class"]


def test_excluded_counts_are_the_unmapped_codes(summary, generated):
    expected = {c: generated["raw_counts"][c] for c in OTHER_CODES}
    assert summary["excluded_counts"] == expected
    assert summary["evaluated_utterances"] == generated["total_utterances"]


def test_total_duration_equals_generated_audio(summary, generated):
    seconds = generated["kept_seconds_4class"]
    assert summary["seconds"] == pytest.approx(seconds, abs=1e-3)
    assert summary["hours"] == pytest.approx(seconds / 3600, abs=1e-4)


def test_session_counts_sum_to_total(summary):
    assert sorted(summary["session_counts"]) == ["1", "2", "3", "4", "5"]
    assert sum(summary["session_counts"].values()) == summary["utterances"]


def test_summary_is_printed(synthetic_corpus, tmp_path, capsys):
    prepare_iemocap(synthetic_corpus / RELEASE_DIRNAME, tmp_path)
    out = capsys.readouterr().out
    assert "IEMOCAP:" in out and "class_counts: neu=" in out


# ------------------------------------------------------------- manifest


def test_manifest_entries_have_exactly_the_documented_fields(manifest):
    for entry in manifest.values():
        assert set(entry) == MANIFEST_FIELDS


def test_manifest_wav_paths_are_absolute_and_exist(manifest):
    for utt, entry in manifest.items():
        assert os.path.isabs(entry["wav"])
        assert os.path.basename(entry["wav"]) == f"{utt}.wav"
        assert os.path.isfile(entry["wav"])


def test_manifest_durations_equal_generated_durations(manifest, generated):
    for utt, entry in manifest.items():
        expected = generated["utterances"][utt]["duration"]
        assert entry["duration"] == pytest.approx(expected, abs=1e-6)


def test_manifest_vad_and_text_equal_generated_values(manifest, generated):
    for utt, entry in manifest.items():
        written = generated["utterances"][utt]
        for key in ("valence", "arousal", "dominance", "text", "emo_raw"):
            assert entry[key] == written[key], (utt, key)


def test_manifest_session_gender_dialog_and_improvised(manifest):
    for utt, entry in manifest.items():
        assert entry["session"] == int(utt[4])
        assert entry["gender"] == entry["speaker"][-1]
        assert utt.startswith(entry["dialog"] + "_")
        assert entry["improvised"] == ("impro" in entry["dialog"])


def test_manifest_file_keys_are_sorted(synthetic_prepared):
    text = (synthetic_prepared / "iemocap.json").read_text(encoding="utf-8")
    keys = list(json.loads(text))
    assert keys == sorted(keys)


def test_preparation_is_deterministic(synthetic_corpus, tmp_path):
    release = synthetic_corpus / RELEASE_DIRNAME
    first = prepare_iemocap(release, tmp_path / "a")
    second = prepare_iemocap(release, tmp_path / "b")
    with open(first, "rb") as a, open(second, "rb") as b:
        assert a.read() == b.read()


# -------------------------------------------------------------- speakers


def test_speaker_is_letter_before_index_in_lettered_dialog():
    assert speaker_of("Ses03M_impro05a_F012") == "Ses03F"
    assert speaker_of("Ses03M_impro08b_M002") == "Ses03M"


def test_manifest_speakers_equal_generated_speakers(manifest, generated):
    for utt, entry in manifest.items():
        assert entry["speaker"] == generated["utterances"][utt]["speaker"]


def test_lettered_dialog_utterances_of_other_gender_keep_their_speaker(
    manifest,
):
    crossed = {
        utt: entry
        for utt, entry in manifest.items()
        if entry["dialog"] == "Ses03M_impro05a" and "_F0" in utt
    }
    assert crossed, "the corpus should have female turns in Ses03M_impro05a"
    assert {e["speaker"] for e in crossed.values()} == {"Ses03F"}


# ---------------------------------------------------------------- labels


def test_exc_is_merged_into_hap_by_default(manifest):
    codes = {e["emo_raw"]: set() for e in manifest.values()}
    for entry in manifest.values():
        codes[entry["emo_raw"]].add(entry["emo"])
    assert codes == {
        "neu": {"neu"},
        "hap": {"hap"},
        "exc": {"hap"},
        "sad": {"sad"},
        "ang": {"ang"},
    }


def test_4class_exc_keeps_exc_as_its_own_class(
    synthetic_corpus, tmp_path, generated
):
    release = synthetic_corpus / RELEASE_DIRNAME
    prepare_iemocap(release, tmp_path, label_map="4class_exc")
    summary = _load(tmp_path / "summary.json")
    assert summary["classes"] == ["neu", "hap", "exc", "sad", "ang"]
    assert summary["class_counts"]["exc"] == generated["raw_counts"]["exc"]
    assert summary["class_counts"]["hap"] == generated["raw_counts"]["hap"]


def test_5class_fru_keeps_fru(synthetic_corpus, tmp_path, generated):
    release = synthetic_corpus / RELEASE_DIRNAME
    prepare_iemocap(release, tmp_path, label_map="5class_fru")
    summary = _load(tmp_path / "summary.json")
    assert summary["class_counts"]["fru"] == generated["raw_counts"]["fru"]
    assert "fru" not in summary["excluded_counts"]


def test_label_map_given_as_dict_selects_and_renames(
    synthetic_corpus, tmp_path, generated
):
    release = synthetic_corpus / RELEASE_DIRNAME
    mapping = {"neu": "neutral", "sur": "surprise"}
    path = prepare_iemocap(release, tmp_path, label_map=mapping)
    emos = {e["emo"] for e in _load(path).values()}
    summary = _load(tmp_path / "summary.json")
    assert emos == {"neutral", "surprise"}
    assert summary["class_counts"] == {
        "neutral": generated["raw_counts"]["neu"],
        "surprise": generated["raw_counts"]["sur"],
    }


def test_unknown_label_map_name_is_rejected(synthetic_corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown label_map"):
        prepare_iemocap(
            synthetic_corpus / RELEASE_DIRNAME, tmp_path, label_map="7class"
        )


# ------------------------------------------------- what is not a summary


def test_per_rater_and_hidden_files_are_not_read(synthetic_corpus, manifest):
    evaluation = synthetic_corpus / RELEASE_DIRNAME / "Session1" / "dialog"
    evaluation = evaluation / "EmoEvaluation"
    decoys = [
        evaluation / "Self-evaluation" / "Ses01F_impro01.txt",
        evaluation / "._Ses01F_impro01.txt",
    ]
    for decoy in decoys:  # each would add an utterance if it were read
        assert "Ses01F_impro01_F900" in parse_evaluation(decoy)
    assert not any(utt.endswith("_F900") for utt in manifest)


def test_transcribed_turn_without_evaluation_is_not_an_utterance(
    synthetic_corpus, manifest
):
    release = synthetic_corpus / RELEASE_DIRNAME
    stray = "Ses01F_impro01_MXX0"
    wav, transcript, _ = _utterance_paths(release, "Ses01F_impro01_M000")
    assert wav.with_name(f"{stray}.wav").is_file()
    assert stray in transcript.read_text(encoding="utf-8")
    assert stray not in manifest


# ---------------------------------------------------------------- errors


def test_non_iemocap_folder_gives_one_clear_error(tmp_path):
    (tmp_path / "readme.txt").write_text("not a corpus")
    with pytest.raises(IEMOCAPFormatError) as error:
        prepare_iemocap(tmp_path, tmp_path / "out")
    message = str(error.value)
    assert "no Session1..Session5/dialog/EmoEvaluation found" in message
    assert str(tmp_path) in message
    assert not (tmp_path / "out" / "iemocap.json").exists()


def test_parent_of_release_gets_a_hint(synthetic_corpus, tmp_path):
    with pytest.raises(IEMOCAPFormatError, match="did you mean"):
        prepare_iemocap(synthetic_corpus, tmp_path)


def test_partial_release_names_the_missing_folders(release_copy, tmp_path):
    shutil.rmtree(release_copy / "Session4" / "dialog" / "transcriptions")
    with pytest.raises(IEMOCAPFormatError) as error:
        prepare_iemocap(release_copy, tmp_path / "out")
    assert "Session4/dialog/transcriptions" in str(error.value)
    assert "Session3" not in str(error.value)


@pytest.mark.parametrize(
    "bad_line",
    [
        "[1.0000 - 2.0000]\t{utt}\tneu\t[2.5, 2.5]",
        "[1.0000 - 2.0000]\tSes01F_impro01_X01\tneu\t[2.5, 2.5, 2.5]",
    ],
    ids=["two_ratings", "no_speaker_letter"],
)
def test_malformed_summary_line_names_file_and_line_number(
    release_copy, tmp_path, generated, bad_line
):
    utt = _kept_utterance(generated)
    _, _, evaluation = _utterance_paths(release_copy, utt)
    lines = evaluation.read_text(encoding="utf-8").splitlines()
    number = next(i for i, line in enumerate(lines, 1) if f"\t{utt}\t" in line)
    lines[number - 1] = bad_line.format(utt=utt)
    evaluation.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(IEMOCAPFormatError) as error:
        prepare_iemocap(release_copy, tmp_path / "out")
    assert str(evaluation) in str(error.value)
    assert f"line {number}:" in str(error.value)


def test_missing_wavs_are_listed(release_copy, tmp_path, generated):
    utts = [
        _kept_utterance(generated, "neu"),
        _kept_utterance(generated, "ang"),
    ]
    wavs = [_utterance_paths(release_copy, utt)[0] for utt in utts]
    for wav in wavs:
        wav.unlink()
    with pytest.raises(IEMOCAPMissingFilesError) as error:
        prepare_iemocap(release_copy, tmp_path / "out")
    assert "2 labelled utterance(s) have no wav file" in str(error.value)
    assert sorted(error.value.missing) == sorted(str(w) for w in wavs)
    for wav in wavs:
        assert str(wav) in str(error.value)


def test_skip_missing_drops_missing_wavs_and_reports_them(
    release_copy, tmp_path, generated
):
    utt = _kept_utterance(generated, "sad")
    _utterance_paths(release_copy, utt)[0].unlink()
    path = prepare_iemocap(release_copy, tmp_path, skip_missing=True)
    summary = _load(tmp_path / "summary.json")
    assert utt not in _load(path)
    assert summary["skipped_counts"]["missing_wav"] == 1
    assert summary["utterances"] == generated["kept_utterances_4class"] - 1


def test_missing_wav_of_an_excluded_utterance_is_not_an_error(
    release_copy, tmp_path, generated
):
    utt = _kept_utterance(generated, "fru")
    _utterance_paths(release_copy, utt)[0].unlink()
    path = prepare_iemocap(release_copy, tmp_path)
    assert len(_load(path)) == generated["kept_utterances_4class"]


@pytest.mark.parametrize("problem", ["empty", "absent"])
def test_missing_or_empty_transcript_is_an_error_naming_the_utterance(
    release_copy, tmp_path, generated, problem
):
    utt = _kept_utterance(generated, "hap")
    _, transcript, _ = _utterance_paths(release_copy, utt)
    new_line = f"{utt} [001.0000-002.0000]: " if problem == "empty" else ""
    _rewrite_line(transcript, utt, new_line)
    with pytest.raises(IEMOCAPMissingFilesError) as error:
        prepare_iemocap(release_copy, tmp_path / "out")
    assert "missing or empty transcript" in str(error.value)
    assert utt in str(error.value)


def test_skip_missing_drops_empty_transcripts_and_reports_them(
    release_copy, tmp_path, generated
):
    utt = _kept_utterance(generated, "exc")
    _, transcript, _ = _utterance_paths(release_copy, utt)
    _rewrite_line(transcript, utt, f"{utt} [001.0000-002.0000]:")
    path = prepare_iemocap(release_copy, tmp_path, skip_missing=True)
    summary = _load(tmp_path / "summary.json")
    assert utt not in _load(path)
    assert summary["skipped_counts"]["missing_text"] == 1


@pytest.mark.parametrize(
    "damage, message",
    [
        ("zero_bytes", "cannot read audio"),
        ("no_samples", "the file holds no audio samples"),
        ("nan", "the audio contains NaN or inf samples"),
        ("inf", "the audio contains NaN or inf samples"),
    ],
)
def test_a_damaged_wav_fails_preparation_naming_the_file(
    release_copy, tmp_path, generated, damage, message
):
    wav = _utterance_paths(release_copy, _kept_utterance(generated, "sad"))[0]
    samples = torch.zeros(1, 1600)
    if damage == "zero_bytes":
        wav.write_bytes(b"")
    elif damage == "no_samples":
        audio_io.save(str(wav), samples[:, :0], 16000)
    else:
        samples[0, 800] = float(damage)
        audio_io.save(str(wav), samples, 16000, subtype="FLOAT")
    with pytest.raises(AudioFileError, match=f"^{wav}: {message}"):
        prepare_iemocap(release_copy, tmp_path / "out")


def test_cli_turns_an_error_into_one_line_and_nonzero_exit(tmp_path, capsys):
    status = main(["--data_folder", str(tmp_path), "--save_folder", "x"])
    err = capsys.readouterr().err
    assert status != 0
    assert err.startswith("mtmm prepare: ") and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_cli_prepares_and_exits_zero(synthetic_corpus, tmp_path, capsys):
    release = str(synthetic_corpus / RELEASE_DIRNAME)
    status = main(["--data_folder", release, "--save_folder", str(tmp_path)])
    assert status == 0
    assert (tmp_path / "iemocap.json").is_file()


# ----------------------------------------------------------------- reuse


def test_rerun_with_same_options_reuses_outputs(
    synthetic_corpus, tmp_path, monkeypatch
):
    release = synthetic_corpus / RELEASE_DIRNAME
    prepare_iemocap(release, tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("the manifest was rebuilt")

    monkeypatch.setattr(iemocap, "build_manifest", fail)
    assert prepare_iemocap(release, tmp_path) == str(tmp_path / "iemocap.json")


def test_a_shared_folder_is_not_prepared_again_with_another_label_map(
    synthetic_corpus, tmp_path
):
    release = synthetic_corpus / RELEASE_DIRNAME
    prepare_iemocap(release, tmp_path)
    before = _load(tmp_path / "iemocap.json")
    with pytest.raises(
        iemocap.IEMOCAPError, match="prepared with other label_map"
    ):
        prepare_iemocap(release, tmp_path, label_map="4class_exc")
    assert _load(tmp_path / "iemocap.json") == before
    other = prepare_iemocap(release, tmp_path / "exc", label_map="4class_exc")
    assert "exc" in {e["emo"] for e in _load(other).values()}


def test_a_truncated_prepared_file_is_written_again(synthetic_corpus, tmp_path):
    release = synthetic_corpus / RELEASE_DIRNAME
    prepare_iemocap(release, tmp_path)
    fold_file = tmp_path / "folds" / "speaker" / "fold_2" / "test.json"
    complete = fold_file.read_text()
    fold_file.write_text(complete[: len(complete) // 2])
    prepare_iemocap(release, tmp_path)
    assert fold_file.read_text() == complete


def test_rerun_after_release_changed_regenerates(release_copy, tmp_path):
    prepare_iemocap(release_copy, tmp_path)
    utt = next(iter(_load(tmp_path / "iemocap.json")))
    _, transcript, _ = _utterance_paths(release_copy, utt)
    _rewrite_line(transcript, utt, f"{utt} [001.0000-002.0000]: Changed.")
    path = prepare_iemocap(release_copy, tmp_path)
    assert _load(path)[utt]["text"] == "Changed."


def test_rerun_regenerates_when_an_output_is_missing(
    synthetic_corpus, tmp_path
):
    release = synthetic_corpus / RELEASE_DIRNAME
    prepare_iemocap(release, tmp_path)
    fold_file = tmp_path / "folds" / "speaker" / "fold_4" / "valid.json"
    fold_file.unlink()
    prepare_iemocap(release, tmp_path)
    assert fold_file.is_file()


SUMMARY = "[6.2901 - 8.2357]\tSes01F_impro01_F000\tneu\t[{}, 3.0000, 2.0000]\n"


def test_a_rating_outside_the_1_to_5_scale_names_its_line(tmp_path):
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text("% header\n\n" + SUMMARY.format("93.3000"))
    with pytest.raises(IEMOCAPFormatError, match=r"line 3: ratings \[93.3"):
        iemocap.parse_evaluation(path)


def test_a_summary_line_without_its_bracket_is_not_dropped(tmp_path):
    path = tmp_path / "Ses01F_impro01.txt"
    path.write_text("% header\n\n" + SUMMARY.format("2.5000")[1:])
    with pytest.raises(IEMOCAPFormatError, match="line 3: .* leading '\\['"):
        iemocap.parse_evaluation(path)


def test_a_transcript_file_with_a_byte_order_mark_reads(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text(
        "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\n",
        encoding="utf-8-sig",
    )
    assert iemocap.parse_transcriptions(path) == {
        "Ses01F_impro01_F000": "Excuse me."
    }
