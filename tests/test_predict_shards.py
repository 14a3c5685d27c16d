"""Sharded prediction (issue 26, item 3): ``mtmm predict --shards N``,
``--shard I/N`` and torchrun, on an export of conftest's light run.

The reference is always a one-process ``mtmm predict`` of the same inputs:
the sharded output must equal it byte for byte. The fast tests run the
shards one after another in this process (``--shard I/N``, or torchrun's
environment); those that start processes (local ``--shards``, a SIGKILL,
torchrun itself) are marked slow.
"""

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

from speechbrain_mtmm import slurm
from speechbrain_mtmm.cli import main as mtmm
from speechbrain_mtmm.data.msp_podcast import CLASSES
from speechbrain_mtmm.inference import predict
from speechbrain_mtmm.inference.shards import (
    PartWriter,
    make_plan,
    part_name,
    parts_folder,
    write_plan,
)
from speechbrain_mtmm.sharing.export import export_model
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV

TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@pytest.fixture(autouse=True)
def not_under_torchrun(monkeypatch):
    """No torchrun variables from the environment the tests run in."""
    for name in TORCHRUN:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("shards")


@pytest.fixture(scope="module")
def model(light_run, work):
    """An export of conftest's light fbank/hashing run."""
    return export_model(light_run.folder, work / "model")


def write_manifest(path, rows):
    """A predict manifest (path,text) of ``rows``."""
    with open(path, "w", newline="", encoding="utf-8") as fout:
        out = csv.writer(fout)
        out.writerow(["path", "text"])
        out.writerows(rows)
    return path


@pytest.fixture(scope="module")
def utterances(synthetic_prepared):
    with open(synthetic_prepared / "iemocap.json", encoding="utf-8") as fin:
        entries = list(json.load(fin).values())
    return [(e["wav"], e["text"]) for e in entries[:5]]


@pytest.fixture(scope="module")
def manifest(utterances, work):
    """5 utterances, every other one without its transcript, and a file
    that does not exist (its own error row, fourth of 6)."""
    rows = [
        (wav, text if k % 2 else "") for k, (wav, text) in enumerate(utterances)
    ]
    rows.insert(3, (str(work / "missing.wav"), ""))
    return write_manifest(work / "manifest.csv", rows)


@pytest.fixture(scope="module")
def reference(model, manifest, work):
    """``reference(fmt)``: the bytes a one-process run writes."""
    done = {}

    def get(fmt):
        """The one-process output in ``fmt``, predicted once."""
        if fmt not in done:
            out = work / f"reference.{fmt}"
            args = ["predict", "--model", str(model), str(manifest)]
            code = mtmm([*args, "--format", fmt, "--output", str(out)])
            assert code == 1  # the missing file
            done[fmt] = out.read_bytes()
        return done[fmt]

    return get


def error_line(err):
    """The one error line of stderr (no traceback, no second error)."""
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


def run(model, inputs, output, *extra, fmt="json"):
    """``mtmm predict`` in this process; its exit code."""
    args = ["predict", "--model", str(model), *map(str, inputs)]
    return mtmm([*args, "--format", fmt, "--output", str(output), *extra])


@pytest.fixture(scope="module")
def finished(model, manifest, reference, work):
    """A parts folder of 2 shards, both finished and merged (read only:
    copy it first)."""
    output = work / "finished" / "out.json"
    output.parent.mkdir()
    assert run(model, [manifest], output, "--shard", "0/2") == 0
    assert run(model, [manifest], output, "--shard", "1/2") == 1
    assert output.read_bytes() == reference("json")
    return output


def copy_of(finished, tmp_path):
    """A copy of the finished run; its output file."""
    folder = shutil.copytree(finished.parent, tmp_path / "run")
    return folder / finished.name


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_shards_run_one_by_one_merge_into_the_one_process_output(
    fmt, model, manifest, reference, tmp_path
):
    output = tmp_path / f"out.{fmt}"
    codes = []
    for index in range(3):
        assert not output.exists()  # only the last shard merges
        codes.append(
            run(model, [manifest], output, "--shard", f"{index}/3", fmt=fmt)
        )
    assert codes == [0, 0, 1]  # the merge counts the missing file
    assert output.read_bytes() == reference(fmt)
    parts = sorted(p.name for p in parts_folder(output).glob("*.jsonl"))
    assert parts == [part_name(i, 3) for i in range(3)]


def test_torchrun_ranks_merge_into_the_one_process_output(
    model, manifest, reference, tmp_path, monkeypatch
):
    output = tmp_path / "out.json"
    monkeypatch.setenv("WORLD_SIZE", "2")
    codes = []
    for rank in (1, 0):  # whichever finishes last merges
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", str(rank))
        codes.append(run(model, [manifest], output))
    assert codes == [0, 1]
    assert output.read_bytes() == reference("json")
    assert (parts_folder(output) / part_name(1, 2)).is_file()


def count_predictions(monkeypatch):
    """The inputs predicted from now on, counted."""
    calls = []
    real = predict._predict_one

    def counted(recognizer, file, text):
        """Counts, then predicts."""
        calls.append(file)
        return real(recognizer, file, text)

    monkeypatch.setattr(predict, "_predict_one", counted)
    return calls


def test_a_shard_cut_short_resumes_after_its_last_complete_row(
    finished, tmp_path, reference, model, manifest, monkeypatch
):
    output = copy_of(finished, tmp_path)
    output.unlink()
    part = parts_folder(output) / part_name(0, 2)
    lines = part.read_bytes().splitlines(keepends=True)
    assert len(lines) == 3
    # killed while writing its second row: one row and a half
    part.write_bytes(lines[0] + lines[1][:20])
    part.with_suffix(".done").unlink()
    calls = count_predictions(monkeypatch)
    assert run(model, [manifest], output, "--shard", "0/2") == 1
    assert len(calls) == 2  # the second and third rows only
    assert part.read_bytes() == b"".join(lines)
    assert output.read_bytes() == reference("json")


def test_a_rerun_skips_finished_parts_without_the_model(
    finished, tmp_path, reference, model, manifest, monkeypatch
):
    output = copy_of(finished, tmp_path)
    output.unlink()

    def refuse(*args, **kwargs):
        """Fails the test: nothing was left to predict."""
        raise AssertionError("a finished part was predicted again")

    monkeypatch.setattr(predict, "load_recognizer", refuse)
    monkeypatch.setattr(predict.subprocess, "Popen", refuse)
    assert run(model, [manifest], output, "--shard", "0/2") == 1  # merges
    assert output.read_bytes() == reference("json")
    output.unlink()
    assert run(model, [manifest], output, "--shards", "2") == 1
    assert output.read_bytes() == reference("json")


def test_a_part_killed_before_its_marker_is_finished_without_the_model(
    finished, tmp_path, reference, model, manifest, monkeypatch
):
    output = copy_of(finished, tmp_path)
    output.unlink()
    marker = parts_folder(output) / part_name(0, 2).replace(".jsonl", ".done")
    marker.unlink()
    monkeypatch.setattr(predict, "load_recognizer", None)  # not called
    assert run(model, [manifest], output, "--shard", "0/2") == 1
    assert marker.is_file()
    assert output.read_bytes() == reference("json")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--shards", "2"], "--shards writes each shard's part next to the "),
        (["--shard", "0/2"], "--shard writes each shard's part next to the "),
        (["--shards", "0", "--output", "o"], "--shards 0: give 1 or more"),
        (["--shard", "2/2", "--output", "o"], "--shard 2/2: give I/N with 0"),
        (["--shard", "one", "--output", "o"], "--shard one: give I/N with 0"),
        (
            ["--shards", "2", "--shard", "0/2", "--output", "o"],
            "give --shards N (local) or --shard I/N, not both",
        ),
    ],
    ids=[
        "shards-no-output",
        "shard-no-output",
        "zero",
        "index",
        "word",
        "both",
    ],
)
def test_bad_shard_options_are_one_line_usage_errors(
    extra, message, model, manifest, capsys
):
    args = ["predict", "--model", str(model), str(manifest), *extra]
    assert mtmm(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_shards_under_torchrun_are_refused(
    model, manifest, monkeypatch, capsys
):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert run(model, [manifest], "o.json", "--shards", "2") == 2
    assert "under torchrun each process is one shard" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        ("text", "predicted with other inputs or transcripts; use the same"),
        ("row", "with another number of inputs (6, now 5)"),
        ("shards", "with another number of shards (2, now 3)"),
        ("model", "predicted with another model; use the same command"),
    ],
)
def test_a_rerun_with_another_plan_is_refused_in_one_line(
    change, message, finished, tmp_path, model, manifest, capsys
):
    output = copy_of(finished, tmp_path)
    before = sorted(p.read_bytes() for p in parts_folder(output).iterdir())
    with open(manifest, newline="") as fin:
        rows = list(csv.reader(fin))[1:]
    shard = "0/2"
    if change == "text":
        rows[0][1] = "Something else."
    elif change == "row":
        del rows[-1]
    elif change == "shards":
        shard = "0/3"
    elif change == "model":
        model = shutil.copytree(model, tmp_path / "model")
        info = json.loads((model / "export_info.json").read_text())
        info["note"] = "another export"
        (model / "export_info.json").write_text(json.dumps(info))
    inputs = write_manifest(tmp_path / "manifest.csv", rows)
    capsys.readouterr()
    assert run(model, [inputs], output, "--shard", shard) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
    assert str(parts_folder(output) / "plan.json") in err
    assert (
        sorted(p.read_bytes() for p in parts_folder(output).iterdir()) == before
    )


def test_an_edited_finished_part_is_refused_naming_it(
    finished, tmp_path, model, manifest, capsys
):
    output = copy_of(finished, tmp_path)
    part = parts_folder(output) / part_name(1, 2)
    part.write_bytes(part.read_bytes().replace(b'"label": "', b'"label": "x'))
    assert run(model, [manifest], output, "--shard", "0/2") == 2
    err = error_line(capsys.readouterr().err)
    assert f"{part}: changed since it was finished" in err


def test_an_edited_unfinished_part_is_refused_naming_its_line(
    finished, tmp_path, model, manifest, utterances, capsys
):
    output = copy_of(finished, tmp_path)
    part = parts_folder(output) / part_name(0, 2)
    part.with_suffix(".done").unlink()
    lines = part.read_text().splitlines(keepends=True)
    lines[1] = lines[1].replace(utterances[1][0], utterances[2][0])
    part.write_text("".join(lines))
    assert run(model, [manifest], output, "--shard", "0/2") == 2
    err = error_line(capsys.readouterr().err)
    assert f"{part} line 2: not the row of {utterances[1][0]}" in err


def test_a_shard_beyond_the_inputs_writes_an_empty_part_without_the_model(
    model, utterances, tmp_path, monkeypatch
):
    inputs = write_manifest(tmp_path / "m.csv", utterances[:2])
    output = tmp_path / "out.json"
    monkeypatch.setattr(predict, "load_recognizer", None)  # not called
    # 2 inputs over 4 shards: shards 1 and 3 hold one each
    assert run(model, [inputs], output, "--shard", "2/4") == 0
    part = parts_folder(output) / part_name(2, 4)
    assert part.read_bytes() == b"" and part.with_suffix(".done").is_file()


def test_local_shards_are_cut_to_one_per_input(
    model, utterances, tmp_path, monkeypatch, capsys
):
    inputs = write_manifest(tmp_path / "m.csv", utterances[:2])
    started = []

    def workers(folder, todo, shards, count, request, poll):
        """Records the shards it would start."""
        started.append((todo, shards))
        return 2

    monkeypatch.setattr(predict, "_run_workers", workers)
    assert run(model, [inputs], tmp_path / "o.json", "--shards", "5") == 2
    assert started == [([0, 1], 2)]
    assert "2 inputs: 2 shards, not 5" in capsys.readouterr().err


def test_a_sharded_submission_is_refused_for_a_model_not_of_the_challenge(
    model, manifest, tmp_path, capsys
):
    args = ["--shard", "0/1"]
    assert (
        run(model, [manifest], tmp_path / "sub", *args, fmt="msp-podcast") == 2
    )
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("mtmm predict: error: the model predicts [")
    assert "not MSP-Podcast's classes" in err[-1]


def msp_rows(count, failed=()):
    """Prediction rows of the challenge's files, on 0-1."""
    labels = list(CLASSES.values())
    rows = []
    for k in range(count):
        row = {"file": f"MSP-PODCAST_test3_{k:04d}.wav", "label": labels[k % 8]}
        row.update(valence=k / count, arousal=1 - k / count, dominance=0.25)
        rows.append(
            {"file": row["file"], "error": "OSError: x"} if k in failed else row
        )
    return rows


def write_parts(output, rows, shards):
    """Parts of ``rows`` as shards would write them, with a plan of the
    challenge's model."""
    folder = parts_folder(output)
    jobs = [(row["file"], None) for row in rows]
    plan = make_plan(jobs, shards, "org/msp-model")
    columns = {
        "labels": list(CLASSES.values()),
        "dimensions": ["valence", "arousal", "dominance"],
        "rating_scale": [1, 7],
    }
    write_plan(folder, plan, columns)
    for index in range(shards):
        start, stop = (
            len(rows) * index // shards,
            len(rows) * (index + 1) // shards,
        )
        with PartWriter(
            folder / part_name(index, shards), [f for f, _ in jobs[start:stop]]
        ) as writer:
            for row in rows[start:stop]:
                writer.write(row)
            writer.finish()


def test_sharded_msp_podcast_files_are_the_challenge_files_of_every_row(
    tmp_path,
):
    rows = msp_rows(10)
    write_parts(tmp_path / "submission", rows, 3)
    assert predict.merge_parts(tmp_path / "submission", "msp-podcast") == 0
    with open(tmp_path / "submission" / "categorical.csv") as fin:
        written = list(csv.reader(fin))
    codes = {label: code for code, label in CLASSES.items()}
    assert written == [["FileName", "EmoClass"]] + [
        [row["file"], codes[row["label"]]] for row in rows
    ]
    with open(tmp_path / "submission" / "attributes.csv") as fin:
        attributes = list(csv.DictReader(fin))
    # 1 + 6 * unit: arousal of row 2 is 1 + 6 * 0.8
    assert float(attributes[2]["EmoAct"]) == pytest.approx(5.8)
    assert [float(a["EmoDom"]) for a in attributes] == [2.5] * 10


def test_a_sharded_submission_with_a_failed_file_writes_nothing(
    tmp_path, capsys
):
    write_parts(tmp_path / "submission", msp_rows(4, failed={2}), 2)
    assert predict.merge_parts(tmp_path / "submission", "msp-podcast") == 1
    assert not (tmp_path / "submission").exists()
    assert "mtmm predict: error: OSError: x" in capsys.readouterr().err


# ##### Processes (slow) #####


def offline_env(**extra):
    return {**os.environ, **OFFLINE_ENV, **extra}


@pytest.fixture(scope="module")
def many(utterances, work):
    """48 inputs (the 5 utterances again and again, with transcripts)."""
    rows = [utterances[k % len(utterances)] for k in range(48)]
    return write_manifest(work / "many.csv", rows)


@pytest.fixture(scope="module")
def many_reference(model, many, work):
    out = work / "many_reference.csv"
    assert run(model, [many], out, fmt="csv") == 0
    return out.read_bytes()


@pytest.mark.slow
def test_local_shards_equal_one_process_and_a_rerun_starts_none(
    model, many, many_reference, tmp_path, monkeypatch
):
    output = tmp_path / "out.csv"
    assert run(model, [many], output, "--shards", "2", fmt="csv") == 0
    assert output.read_bytes() == many_reference
    logs = sorted(parts_folder(output).glob("*.log"))
    assert len(logs) == 2
    output.unlink()
    monkeypatch.setattr(predict.subprocess, "Popen", None)  # not called
    assert run(model, [many], output, "--shards", "2", fmt="csv") == 0
    assert output.read_bytes() == many_reference


@pytest.mark.slow
def test_a_sigkilled_shard_loses_nothing_and_resumes(
    model, many, many_reference, tmp_path
):
    output = tmp_path / "out.csv"
    request = {
        "model": model,
        "inputs": [many],
        "output": output,
        "fmt": "csv",
        "device": "cpu",
        "backend": "torch",
    }
    part = parts_folder(output) / part_name(0, 1)
    worker = subprocess.Popen(
        predict.shard_command(request, 0, 1),
        env=offline_env(),
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and worker.poll() is None:
        if part.is_file() and part.read_bytes().count(b"\n") >= 3:
            os.kill(worker.pid, signal.SIGKILL)
            break
        time.sleep(0.02)
    assert worker.wait() == -signal.SIGKILL
    kept = part.read_bytes().count(b"\n")
    assert 3 <= kept < 48 and not part.with_suffix(".done").exists()
    assert run(model, [many], output, "--shards", "1", fmt="csv") == 0
    assert output.read_bytes() == many_reference


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_processes_equal_one_process(
    model, many, many_reference, tmp_path
):
    output = tmp_path / "out.csv"
    command = [sys.executable, "-m", "torch.distributed.run"]
    command += ["--nproc_per_node=2", f"--master_port={free_port()}"]
    command += ["-m", "speechbrain_mtmm", "predict", "--model", str(model)]
    command += [str(many), "--format", "csv", "--output", str(output)]
    result = subprocess.run(
        command,
        env=offline_env(OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.read_bytes() == many_reference
    parts = sorted(p.name for p in parts_folder(output).glob("*.jsonl"))
    assert parts == [part_name(0, 2), part_name(1, 2)]


@pytest.mark.slow
def test_shards_as_slurm_jobs_merge_into_the_one_process_output(
    cluster, model, manifest, reference, tmp_path, monkeypatch
):
    monkeypatch.setenv("MTMM_SLURM_POLL_SECONDS", "1")
    monkeypatch.chdir(tmp_path)
    output = tmp_path / "out.json"
    code = run(
        model, [manifest], output, "--shards", "2", "--launcher", "slurm"
    )
    assert code == 1  # the missing file, as in one process
    assert output.read_bytes() == reference("json")
    record = json.loads(
        (tmp_path / "out.json.parts" / slurm.RECORD).read_text()
    )
    assert record  # the jobs were recorded in the parts folder


def test_shards_of_an_ensemble_merge_into_its_one_process_output(
    model, manifest, tmp_path
):
    def ensemble(output, *extra):
        """``mtmm predict`` of a two-member weighted ensemble, as CSV."""
        models = ["--model", str(model), "--model", str(model)]
        return mtmm(
            ["predict", *models, str(manifest), "--weights", "3", "1"]
            + ["--format", "csv", "--output", str(output), *extra]
        )

    assert ensemble(tmp_path / "one.csv") == 1  # the missing file
    output = tmp_path / "sharded.csv"
    codes = [ensemble(output, "--shard", f"{i}/2") for i in range(2)]
    assert codes == [0, 1]
    one = (tmp_path / "one.csv").read_bytes()
    assert output.read_bytes() == one
    assert b"ensemble" in one.splitlines()[0]
    plan = json.loads((parts_folder(output) / "plan.json").read_text())
    assert len(plan["model"]) == 2 and plan["weights"] == [3.0, 1.0]
