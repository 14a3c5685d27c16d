"""User and environment faults end in one line, and leave nothing behind.

Issue 28, items 12-16, 18 and 20: a full disk, a read-only folder, a bad
YAML file, an override given twice and two kinds of intra-epoch
checkpoints end a recipe or a ``mtmm`` verb with one line naming the file
or the option, leave no partial file and no empty run folder; programming
errors keep their traceback. The recipe refusals are checked in-process
(``run_main`` of the recipe's own ``main``: the same code as the script,
without the start of a new interpreter); a full and a read-only file
system are real in the slow test (a tmpfs mounted in a mount namespace of
its own, where ``unshare`` allows it).
"""

import errno
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import speechbrain_mtmm.atomic as atomic
from speechbrain_mtmm.atomic import WriteError, write_json, write_text
from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.synthetic import RELEASE_DIRNAME
from speechbrain_mtmm.experiments.options import parse_overrides
from speechbrain_mtmm.plain_yaml import YamlSyntaxError, read_plain_yaml
from speechbrain_mtmm.system import PAPER_CONFIG, ModelConfigError, check_config
from speechbrain_mtmm.testing.recipes import (
    OFFLINE_ENV,
    find_recipe,
    load_recipe,
    recipe_command,
)
from speechbrain_mtmm.training.checkpoints import AtomicCheckpointer
from speechbrain_mtmm.training.hparams import HparamsError, override_values
from speechbrain_mtmm.training.run import hold_run_lock, run_main
from speechbrain_mtmm.training.splits import DataError

RECIPE = find_recipe(
    Path(__file__).resolve().parents[1]
    / "recipes"
    / "IEMOCAP"
    / "multimodal_emotion"
)
TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos"


@pytest.fixture(scope="module")
def recipe_main():
    """The IEMOCAP recipe's ``main`` (its train.py, imported)."""
    return load_recipe(RECIPE).main


def start_recipe(main, corpus, prepared, output, extra=None, args=()):
    """Runs the recipe's main in this process as train.py would; returns
    its last line on stderr (what ``run_main`` exits with)."""
    command = recipe_command(
        RECIPE,
        corpus / RELEASE_DIRNAME,
        prepared,
        output,
        "fbank",
        "hashing",
        extra,
    )
    argv = [*command[2:], *args]
    argv[0] = str(RECIPE / argv[0])  # the YAML, wherever the tests run
    with pytest.raises(SystemExit) as stop:
        run_main(main, argv)
    return str(stop.value.code)


# 12. a full disk while saving a checkpoint


def full_disk_torch_save(monkeypatch):
    """torch.save as on a full disk: a partial file, then torch's error
    (which carries no errno); the disk then refuses any write."""

    def save(obj, path, *args, **kwargs):
        """Writes half a file, then fails as torch's zip writer does."""
        Path(path).write_bytes(b"PK" * 100)
        raise RuntimeError(f"{TORCH_DISK_FULL} 576 vs 534")

    def write(fd, data):
        """No space left."""
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(atomic.os, "write", write)


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last(
    tmp_path, monkeypatch
):
    model = torch.nn.Linear(3, 3)
    save = tmp_path / "run" / "save"
    checkpointer = AtomicCheckpointer(save, {"model": model})
    previous = checkpointer.save_checkpoint(meta={"score": 1.0})
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    with monkeypatch.context() as patch:
        full_disk_torch_save(patch)
        with torch.no_grad():
            model.weight.add_(1.0)
        with pytest.raises(WriteError) as error:
            checkpointer.save_checkpoint(meta={"score": 2.0})
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{save}: disk full while saving a checkpoint")
    assert "previous checkpoints are intact" in message
    # the partial checkpoint is gone, the previous one loads as it was
    assert [p.name for p in save.iterdir()] == [previous.path.name]
    checkpointer.recover_if_possible()
    for key, value in model.state_dict().items():
        assert torch.equal(value, saved[key]), key


def test_a_checkpoint_error_that_is_no_disk_fault_keeps_its_traceback(
    tmp_path, monkeypatch
):
    checkpointer = AtomicCheckpointer(tmp_path, {"m": torch.nn.Linear(1, 1)})

    def save(obj, path, *args, **kwargs):
        """A bug in a saver."""
        raise RuntimeError("a bug")

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(RuntimeError, match="a bug"):
        checkpointer.save_checkpoint()
    assert list(tmp_path.iterdir()) == []  # no staging folder left


# 13. a read-only output folder


def test_a_folder_that_cannot_be_written_ends_a_run_with_one_line_naming_it(
    tmp_path,
):
    folder = tmp_path / "readonly" / "run"

    def main(argv):
        """Fails as makedirs in a read-only folder does."""
        raise PermissionError(errno.EROFS, "Read-only file system", str(folder))

    with pytest.raises(SystemExit) as stop:
        run_main(main, [])
    assert stop.value.code == (
        f"WriteError: {folder}: cannot be written (Read-only file system): "
        "the folder is read-only or not yours; give a folder you can write "
        "to"
    )


def test_other_system_errors_of_a_run_keep_their_traceback():
    def main(argv):
        """A programming error that happens to be an OSError."""
        raise OSError(errno.EBADF, "Bad file descriptor")

    with pytest.raises(OSError, match="Bad file descriptor"):
        run_main(main, [])


def test_a_refused_run_removes_the_run_folder_it_made_and_nothing_else(
    tmp_path,
):
    made = tmp_path / "new" / "run"
    kept = tmp_path / "old_run"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine")
    trained = tmp_path / "trained" / "run"

    def main(argv):
        """Starts three runs (as a start-up would), then refuses."""
        for folder in (made, kept, trained):
            hold_run_lock(folder)
            (folder / "log.txt").write_text("started")
            (folder / "save").mkdir()
        (trained / "save" / "CKPT+1").mkdir()
        (trained / "save" / "CKPT+1" / "model.ckpt").write_text("w")
        raise DataError("train.json: a class with no training example")

    with pytest.raises(SystemExit, match="DataError: train.json"):
        run_main(main, [])
    assert not (tmp_path / "new").exists()  # the parent made for it too
    assert sorted(p.name for p in kept.iterdir()) == [
        "log.txt",
        "notes.txt",
        "run.lock",
        "save",
    ]
    assert (trained / "save" / "CKPT+1" / "model.ckpt").exists()


# 14. a width the attention heads do not divide


def test_d_model_not_divisible_by_n_heads_is_refused_naming_both():
    with pytest.raises(ModelConfigError) as error:
        check_config({**PAPER_CONFIG, "d_model": 1000, "n_heads": 32})
    assert "d_model (1000) must be a multiple of n_heads (32)" in str(
        error.value
    )
    check_config({**PAPER_CONFIG, "d_model": 1024, "n_heads": 32})


def test_a_recipe_with_d_model_not_divisible_by_n_heads_stops_in_one_line(
    tmp_path, recipe_main, synthetic_corpus, synthetic_prepared
):
    output = tmp_path / "run"
    line = start_recipe(
        recipe_main,
        synthetic_corpus,
        synthetic_prepared,
        output,
        {"d_model": 63},
    )
    assert line.startswith("HparamsError: ") and "\n" not in line
    assert "d_model (63) must be a multiple of n_heads (4)" in line
    assert not output.exists()


# 15. a tab in a YAML file


def test_a_tab_in_a_yaml_file_is_one_line_naming_its_line_and_column(
    tmp_path,
):
    path = tmp_path / "x.yaml"
    path.write_text("lr: 0.1\nmodel:\n\tsize: 3\n")
    with pytest.raises(YamlSyntaxError) as error:
        read_plain_yaml(path)
    assert str(error.value) == (
        f"{path}, line 3, column 1: found character '\\t' that cannot start "
        "any token (YAML indents with spaces, not tabs: replace the tab with "
        "spaces)"
    )


def test_a_recipe_yaml_with_a_tab_stops_the_run_in_one_line(
    tmp_path, recipe_main, synthetic_corpus, synthetic_prepared
):
    text = (RECIPE / "hparams" / "iemocap.yaml").read_text()
    lines = text.splitlines()
    at = lines.index("seed: 1")
    lines.insert(at + 1, "\tlr_extra: 1")
    hparams = tmp_path / "tabbed.yaml"
    hparams.write_text("\n".join(lines) + "\n")
    output = tmp_path / "run"
    command = recipe_command(
        RECIPE,
        synthetic_corpus / RELEASE_DIRNAME,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
    )
    with pytest.raises(SystemExit) as stop:
        run_main(recipe_main, [str(hparams), *command[3:]])
    assert stop.value.code == (
        f"YamlSyntaxError: {hparams}, line {at + 2}, column 1: found "
        "character '\\t' that cannot start any token (YAML indents with "
        "spaces, not tabs: replace the tab with spaces)"
    )
    assert not output.exists()


# 16. the same override twice


def test_an_override_given_twice_is_refused_naming_it():
    with pytest.raises(HparamsError) as error:
        override_values("lr: 1\nseed: 3\nlr: 2")
    assert (
        str(error.value) == "--lr is given twice (--lr=1, --lr=2): give it once"
    )
    assert override_values("lr: 1\nseed: 3") == {"lr": 1, "seed": 3}


def test_a_recipe_given_an_override_twice_stops_before_making_anything(
    tmp_path, recipe_main, synthetic_corpus, synthetic_prepared
):
    output = tmp_path / "run"
    line = start_recipe(
        recipe_main,
        synthetic_corpus,
        synthetic_prepared,
        output,
        args=("--seed=3", "--seed=4"),
    )
    assert line == (
        "HparamsError: --seed is given twice (--seed=3, --seed=4): give it once"
    )
    assert not output.exists()


def test_a_sweep_given_an_override_twice_is_refused_naming_it():
    with pytest.raises(ValueError, match=r"--lr is given twice \(--lr=1, "):
        parse_overrides(["--lr=1", "--w_ce", "1", "--lr=2"])


# 18. two kinds of intra-epoch checkpoints


def test_steps_and_the_yaml_minutes_are_refused_before_the_run_folder(
    tmp_path, recipe_main, synthetic_corpus, synthetic_prepared
):
    output = tmp_path / "run"
    # the YAML's ckpt_interval_minutes (15), not the toy runs' 0
    command = recipe_command(
        RECIPE,
        synthetic_corpus / RELEASE_DIRNAME,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
    )
    argv = [
        str(RECIPE / command[2]),
        *[a for a in command[3:] if "ckpt_interval_minutes" not in a],
        "--ckpt_interval_steps=2",
    ]
    with pytest.raises(SystemExit) as stop:
        run_main(recipe_main, argv)
    yaml_file = RECIPE / "hparams" / "iemocap.yaml"
    assert stop.value.code == (
        "HparamsError: --ckpt_interval_steps=2 and ckpt_interval_minutes: 15 "
        f"({yaml_file}) both ask for intra-epoch checkpoints; keep one: give "
        "--ckpt_interval_minutes=0 to save every 2 steps, or "
        "--ckpt_interval_steps=0 to save every 15 minutes"
    )
    assert not output.exists()


# 20. mtmm prepare on a full disk


class FullDisk:
    """A file on a disk that fills up half-way through the first write."""

    def __init__(self, file):
        self.file = file

    def write(self, data):
        """Writes half, then runs out of space."""
        self.file.write(data[: len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()


def test_prepare_on_a_full_disk_is_one_line_naming_the_file_and_leaves_no_tmp(
    tmp_path, monkeypatch, capsys, synthetic_corpus
):
    monkeypatch.setattr(
        atomic, "open", lambda *a, **k: FullDisk(open(*a, **k)), raising=False
    )
    save = tmp_path / "prepared"
    code = mtmm(
        [
            "prepare",
            "iemocap",
            "--data_folder",
            str(synthetic_corpus / RELEASE_DIRNAME),
            "--save_folder",
            str(save),
        ]
    )
    assert code == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        f"mtmm prepare: WriteError: {save / 'iemocap.json'}: disk full while "
        "writing (No space left on device); free some space, then run the "
        "same command again"
    ]
    assert list(save.iterdir()) == []


def test_an_atomic_write_refused_by_the_system_keeps_the_old_file(
    tmp_path, monkeypatch
):
    path = tmp_path / "results.json"
    write_json(path, {"old": 1})

    def refuse(*args, **kwargs):
        """The folder turned read-only."""
        raise PermissionError(errno.EACCES, "Permission denied", args[0])

    monkeypatch.setattr(atomic, "open", refuse, raising=False)
    with pytest.raises(WriteError, match="results.json: cannot be written"):
        write_text(path, "new")
    assert json.loads(path.read_text()) == {"old": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


# 12, 13 and 20 on real file systems: a full and a read-only tmpfs

REAL_DISK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import torch
    from speechbrain_mtmm.atomic import write_json
    from speechbrain_mtmm.training.checkpoints import AtomicCheckpointer

    full, readonly = sys.argv[1:3]
    found = {}
    model = torch.nn.Linear(64, 64)  # 17 KB: one checkpoint fits, not two
    checkpointer = AtomicCheckpointer(f"{full}/save", {"model": model})
    checkpointer.save_checkpoint(meta={"score": 1.0})
    weight = model.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    try:
        os.makedirs(f"{full}/ballast")
        write_json(f"{full}/ballast/a.json", ["x" * 1000] * 30)
        checkpointer.save_checkpoint(meta={"score": 2.0})
    except Exception as error:
        found["checkpoint"] = f"{type(error).__name__}: {error}"
    found["left"] = sorted(os.listdir(f"{full}/save"))
    checkpointer.recover_if_possible()
    found["recovered"] = bool(torch.equal(model.weight, weight))
    try:
        write_json(f"{full}/big.json", ["x" * 1000] * 100)
    except Exception as error:
        found["json"] = f"{type(error).__name__}: {error}"
    found["json_left"] = sorted(os.listdir(full))
    try:
        write_json(f"{readonly}/a.json", [1])
    except Exception as error:
        found["readonly"] = f"{type(error).__name__}: {error}"
    print(json.dumps(found))
    """
)


def in_mount_namespace(tmp_path, script):
    """Runs ``script`` (sh) where ``tmp_path/full`` is a 64 KiB tmpfs and
    ``tmp_path/ro`` a read-only one; skips where mounts are not allowed."""
    for folder in ("full", "ro"):
        (tmp_path / folder).mkdir()
    mounts = (
        f"mount -t tmpfs -o size=64k none {tmp_path / 'full'} && "
        f"mount -t tmpfs -o ro,size=64k none {tmp_path / 'ro'} && "
    )
    for unshare in (["unshare", "-m"], ["unshare", "-rm"]):
        if shutil.which(unshare[0]) is None:
            break
        probe = subprocess.run(
            [*unshare, "sh", "-c", mounts + "echo ok"],
            capture_output=True,
            text=True,
        )
        if probe.stdout.strip() == "ok":
            return subprocess.run(
                [*unshare, "sh", "-c", mounts + script],
                capture_output=True,
                text=True,
                env=dict(os.environ, **OFFLINE_ENV),
            )
    pytest.skip("no tmpfs can be mounted here (unshare -m is not allowed)")


@pytest.mark.slow
def test_a_real_full_and_read_only_file_system_give_one_line_each(tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(REAL_DISK_SCRIPT)
    full, readonly = tmp_path / "full", tmp_path / "ro"
    result = in_mount_namespace(
        tmp_path, f"{sys.executable} {script} {full} {readonly}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["checkpoint"].startswith(
        f"WriteError: {full / 'save'}: disk full while saving a checkpoint"
    )
    assert len(found["left"]) == 1 and found["left"][0].startswith("CKPT+")
    assert found["recovered"]
    assert found["json"].startswith(
        f"WriteError: {full / 'big.json'}: disk full while writing"
    )
    assert "big.json" not in " ".join(found["json_left"])  # no .tmp either
    assert found["readonly"].startswith(
        f"WriteError: {readonly / 'a.json'}: cannot be written (Read-only "
        "file system)"
    )


@pytest.mark.slow
def test_a_run_into_a_read_only_file_system_is_one_line_naming_the_folder(
    tmp_path, synthetic_corpus, synthetic_prepared
):
    output = tmp_path / "ro" / "run"
    command = recipe_command(
        RECIPE,
        synthetic_corpus / RELEASE_DIRNAME,
        synthetic_prepared,
        output,
        "fbank",
        "hashing",
    )
    line = " ".join(f"'{part}'" for part in command)
    result = in_mount_namespace(tmp_path, f"cd '{RECIPE}' && {line}")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"WriteError: {output}: cannot be written (Read-only file system): "
        "the folder is read-only or not yours; give a folder you can write "
        "to"
    )


# issue 30, item 3: every check of a run's settings before anything is made


def test_auxiliary_options_the_cache_cannot_feed_stop_before_any_work(
    tmp_path, recipe_main, synthetic_corpus
):
    """The auxiliary objectives train on what the feature cache does not
    keep: refused before the corpus is prepared or the run folder made (it
    used to be refused after preparing), so nothing is computed and the
    corrected command starts cleanly."""
    output, prepared = tmp_path / "run", tmp_path / "prepared"
    line = start_recipe(
        recipe_main,
        synthetic_corpus,
        prepared,
        output,
        {"w_aug": 0.1, "feature_cache": True, "freeze_policy": "frozen"},
    )
    assert line.startswith("AuxiliaryOptionsError: ") and "\n" not in line
    assert not output.exists() and not prepared.exists()


def test_an_encoder_that_cannot_be_loaded_is_one_line_naming_it(
    tmp_path, recipe_main, synthetic_corpus, synthetic_prepared, monkeypatch
):
    """A typo'd hub id, or offline without the files: transformers' OSError
    (a paragraph, under a traceback) becomes one line naming the source."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = "nobody/no-such-hubert"
    line = start_recipe(
        recipe_main,
        synthetic_corpus,
        synthetic_prepared,
        tmp_path / "run",
        {"audio_source": missing},
    )
    assert line.startswith(f"EncoderError: {missing}: cannot be loaded (")
    assert "\n" not in line and "HF_HUB_OFFLINE" in line
    assert not (tmp_path / "run").exists()
