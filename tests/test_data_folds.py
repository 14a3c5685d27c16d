"""Specification of the speaker-independent folds (data.folds)."""

import json

import pytest

from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.folds import (
    FoldError,
    check_folds,
    fold_paths,
    make_folds,
    read_folds,
    write_folds,
)

SPEAKERS = [f"Ses0{s}{g}" for s in range(1, 6) for g in "FM"]


def main(args):
    return mtmm(["folds", *args])


def _load(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


@pytest.fixture(scope="module")
def toy_manifest():
    """Two utterances per speaker of the 10 IEMOCAP speakers."""
    return {
        f"{speaker}_u{i}": {"speaker": speaker}
        for speaker in SPEAKERS
        for i in range(2)
    }


@pytest.mark.parametrize("protocol", ["speaker", "session"])
def test_no_speaker_is_in_two_splits_and_union_is_all(toy_manifest, protocol):
    for splits in make_folds(toy_manifest, protocol).values():
        train, valid, test = (
            set(splits[s]) for s in ("train", "valid", "test")
        )
        assert not (train & valid or train & test or valid & test)
        assert train | valid | test == set(SPEAKERS)


def test_speaker_protocol_tests_kth_speaker_validates_session_partner(
    toy_manifest,
):
    folds = make_folds(toy_manifest, "speaker")
    assert sorted(folds) == list(range(1, 11))
    for k, test in enumerate(SPEAKERS, start=1):
        partner = test[:5] + ("M" if test[5] == "F" else "F")
        assert folds[k]["test"] == [test]
        assert folds[k]["valid"] == [partner]
        assert len(folds[k]["train"]) == 8


def test_speaker_protocol_next_session_rule(toy_manifest):
    folds = make_folds(toy_manifest, "speaker", speaker_valid="next_session")
    assert folds[1]["valid"] == ["Ses02F"]
    assert folds[10]["test"] == ["Ses05M"]
    assert folds[10]["valid"] == ["Ses01M"]


def test_session_protocol_tests_session_validates_next_female(toy_manifest):
    folds = make_folds(toy_manifest, "session")
    assert sorted(folds) == [1, 2, 3, 4, 5]
    for k in range(1, 6):
        assert folds[k]["test"] == [f"Ses0{k}F", f"Ses0{k}M"]
        assert folds[k]["valid"] == [f"Ses0{k % 5 + 1}F"]
        assert len(folds[k]["train"]) == 7


def test_check_folds_rejects_a_speaker_in_two_splits():
    folds = {2: {"train": ["a", "b"], "valid": ["b"], "test": ["c"]}}
    with pytest.raises(FoldError, match=r"fold 2: .*\['b'\] in train and"):
        check_folds(folds, ["a", "b", "c"])


def test_check_folds_rejects_splits_not_covering_all_speakers():
    folds = {1: {"train": ["a"], "valid": ["b"], "test": ["c"]}}
    with pytest.raises(FoldError, match="expected"):
        check_folds(folds, ["a", "b", "c", "d"])


def test_session_without_both_genders_is_rejected(toy_manifest):
    manifest = {
        u: e for u, e in toy_manifest.items() if e["speaker"] != "Ses03M"
    }
    with pytest.raises(FoldError, match="session 3"):
        make_folds(manifest, "speaker")


def test_unknown_protocol_is_rejected(toy_manifest):
    with pytest.raises(FoldError, match="unknown protocol"):
        make_folds(toy_manifest, "dialog")


def test_fold_paths_layout(tmp_path):
    paths = fold_paths(tmp_path, "session", 5)
    folder = tmp_path / "folds" / "session" / "fold_5"
    assert paths == {s: str(folder / f"{s}.json") for s in paths}
    assert list(paths) == ["train", "valid", "test"]


def test_split_files_hold_exactly_the_utterances_of_their_speakers(
    synthetic_prepared,
):
    manifest = _load(synthetic_prepared / "iemocap.json")
    index = read_folds(synthetic_prepared)
    assert {p: len(f) for p, f in index.items()} == {
        "speaker": 10,
        "session": 5,
    }
    for protocol, folds in index.items():
        for fold, splits in folds.items():
            paths = fold_paths(synthetic_prepared, protocol, fold)
            seen = {}
            for split, path in paths.items():
                subset = _load(path)
                speakers = {e["speaker"] for e in subset.values()}
                assert speakers == set(splits[split])
                seen.update(subset)
            assert seen == manifest


def test_write_folds_on_a_manifest_file(tmp_path, toy_manifest):
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(toy_manifest))
    write_folds(str(manifest_path), tmp_path, protocols=["session"])
    test = _load(fold_paths(tmp_path, "session", 1)["test"])
    assert sorted(test) == ["Ses01F_u0", "Ses01F_u1", "Ses01M_u0", "Ses01M_u1"]
    assert list(read_folds(tmp_path)) == ["session"]


def test_cli_writes_folds_and_reports_errors(tmp_path, toy_manifest, capsys):
    manifest_path = tmp_path / "manifest.json"
    manifest_path.write_text(json.dumps(toy_manifest))
    args = ["--manifest", str(manifest_path), "--save_folder", str(tmp_path)]
    assert main(args) == 0
    assert (tmp_path / "folds" / "speaker" / "fold_10" / "train.json").is_file()
    manifest_path.write_text(json.dumps({"u": {"speaker": "Ses01F"}}))
    assert main(args) == 1
    assert capsys.readouterr().err.startswith("mtmm folds: ")
