"""Sharded prediction's bookkeeping: slices, the plan, part files, merge.

``mtmm predict --shards N`` (or ``--shard I/N``, or torchrun) splits the
ordered input list into N contiguous slices; shard I predicts slice I into
its own part file in ``<output>.parts/``::

    plan.json                       N, the inputs' digest, the model
    part-00003-of-00008.jsonl       one JSON row per input, in input order
    part-00003-of-00008.done        {"rows": ..., "sha256": ...} (atomic)

A part is appended to and flushed row by row, so a killed shard loses
nothing it wrote; a rerun keeps the complete rows of an unfinished part
(each checked against the input it stands for), drops a last line cut
short, and goes on after them. A finished part is marked by its ``.done``
file, written atomically once the part is on disk; a rerun skips it, after
checking that the part still has the digest the marker records. The plan
is written once (an exclusive link, so shards started together agree on
one) and a rerun with other inputs, another model or another N is refused
in one line instead of mixing results.

Parts hold rows as JSON Lines whatever the output format: the JSON output
is their concatenation, byte for byte what one process writes, and the CSV
and MSP-Podcast outputs are written from their rows by the writers of a
one-process run (:mod:`speechbrain_mtmm.inference.predict`).

Written here: neither SpeechBrain nor torch.distributed has resumable
per-shard output files (``torch.distributed`` is not needed: shards never
talk to each other, they only see each other's ``.done`` markers).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import contextlib
import hashlib
import json
import os
from pathlib import Path

from speechbrain_mtmm.atomic import write_json
from speechbrain_mtmm.run_folder import EXPORT_INFO, file_digest, json_digest

#: Written once per parts folder: what its parts were predicted from
PLAN = "plan.json"
#: The plan's fields that must match for a rerun to reuse the parts
PLAN_KEYS = (
    "shards",
    "inputs",
    "inputs_sha256",
    "model",
    "weights",
    "backend",
    "asr",
)


class ShardError(ValueError):
    """A shard option, plan or part file that cannot be used; the message
    is one line naming the file and what to do."""


def parts_folder(output):
    """Where the parts of ``output`` go: ``<output>.parts``.

    Arguments
    ---------
    output : str or os.PathLike
        The merged output (a file, or the folder of ``msp-podcast``).

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> parts_folder("out/predictions.jsonl").as_posix()
    'out/predictions.jsonl.parts'
    """
    output = Path(output)
    return output.with_name(output.name + ".parts")


def part_name(index, shards):
    """The part file of shard ``index`` (0-based) of ``shards``.

    Arguments
    ---------
    index : int
        The shard, from 0.
    shards : int
        Number of shards.

    Returns
    -------
    str

    Example
    -------
    >>> part_name(3, 8)
    'part-00003-of-00008.jsonl'
    """
    return f"part-{index:05d}-of-{shards:05d}.jsonl"


def parse_shard(text):
    """``"I/N"`` as ``(I, N)``: shard I (0-based) of N.

    Arguments
    ---------
    text : str
        E.g. ``"3/8"`` (a SLURM array's ``$SLURM_ARRAY_TASK_ID/8``).

    Returns
    -------
    tuple of int

    Raises
    ------
    ShardError
        When it is not two integers with 0 <= I < N.

    Example
    -------
    >>> parse_shard("3/8")
    (3, 8)
    >>> parse_shard("8/8")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.shards.ShardError: --shard 8/8: give I/N \
with 0 <= I < N (shard I of N, counted from 0)
    """
    index, _, shards = str(text).partition("/")
    try:
        index, shards = int(index), int(shards)
    except ValueError:
        index, shards = -1, 0
    if not 0 <= index < shards:
        raise ShardError(
            f"--shard {text}: give I/N with 0 <= I < N (shard I of N, "
            "counted from 0)"
        )
    return index, shards


def torchrun_shard(environ=None):
    """``(RANK, WORLD_SIZE, LOCAL_RANK)`` when run by torchrun with more
    than one process, else None.

    Arguments
    ---------
    environ : mapping, optional
        The environment (default ``os.environ``).

    Returns
    -------
    tuple of int or None

    Example
    -------
    >>> torchrun_shard({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    (1, 2, 1)
    >>> torchrun_shard({"RANK": "0", "WORLD_SIZE": "1"}) is None
    True
    """
    environ = os.environ if environ is None else environ
    try:
        world = int(environ.get("WORLD_SIZE", "1"))
        rank = int(environ.get("RANK", "0"))
        local = int(environ.get("LOCAL_RANK", rank))
    except ValueError:
        raise ShardError(
            "RANK, WORLD_SIZE or LOCAL_RANK is not an integer: run under "
            "torchrun, or unset them"
        ) from None
    if world <= 1:
        return None
    if not 0 <= rank < world:
        raise ShardError(f"RANK {rank} is not in 0..{world - 1} (WORLD_SIZE)")
    return rank, world, local


def shard_bounds(count, index, shards):
    """The slice ``[start, stop)`` of shard ``index`` of ``shards`` over
    ``count`` inputs: contiguous, in order, sizes differing by at most one
    (a shard may be empty when there are fewer inputs than shards).

    Arguments
    ---------
    count : int
        Number of inputs.
    index : int
        The shard, from 0.
    shards : int
        Number of shards.

    Returns
    -------
    tuple of int

    Example
    -------
    >>> [shard_bounds(10, i, 3) for i in range(3)]
    [(0, 3), (3, 6), (6, 10)]
    >>> shard_bounds(1, 0, 2)
    (0, 0)
    """
    return count * index // shards, count * (index + 1) // shards


def model_identity(model):
    """What identifies a model for a plan without loading it: the SHA-256
    of an export's ``export_info.json`` (which holds the digest of every
    file the model reads, checked when it loads), else of its
    ``hyperparams.yaml``, else the name as given (a hub id).

    Arguments
    ---------
    model : str
        A model folder or hub id.

    Returns
    -------
    str

    Example
    -------
    >>> model_identity("org/some-model")
    'org/some-model'
    """
    for name in (EXPORT_INFO, "hyperparams.yaml"):
        path = Path(model) / name
        if path.is_file():
            return f"{name} sha256:{file_digest(path)}"
    return str(model)


def make_plan(
    jobs, shards, model, backend="torch", asr_source=None, weights=None
):
    """The plan's identity fields (:data:`PLAN_KEYS`).

    Arguments
    ---------
    jobs : list of tuple
        The ordered ``(file, text)`` inputs.
    shards : int
        Number of shards.
    model : str or list of str
        The model folder or hub id (several: an ensemble's members).
    backend : str
        How it runs (torch, onnx, onnx-int8).
    asr_source : str, optional
        The ASR model replacing the export's.
    weights : list of float, optional
        An ensemble's weights, as given.

    Returns
    -------
    dict

    Example
    -------
    >>> plan = make_plan([("a.wav", None)], 2, "org/m")
    >>> plan["shards"], plan["inputs"], plan["model"]
    (2, 1, 'org/m')
    """
    return {
        "shards": shards,
        "inputs": len(jobs),
        "inputs_sha256": json_digest([list(job) for job in jobs]),
        "model": model_identity(model)
        if isinstance(model, (str, os.PathLike))
        else [model_identity(member) for member in model],
        "weights": None if weights is None else [float(w) for w in weights],
        "backend": backend,
        "asr": asr_source,
    }


def read_plan(folder):
    """The plan of a parts folder, or None when there is none yet.

    Arguments
    ---------
    folder : str or os.PathLike
        The parts folder.

    Returns
    -------
    dict or None

    Raises
    ------
    ShardError
        When it is not a plan (edited, cut short).

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> read_plan(folder) is None
    True
    >>> _ = (folder / PLAN).write_text("{")
    >>> read_plan(folder)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.shards.ShardError: ...plan.json: not a shard \
plan (Expecting property name enclosed in double quotes: line 1 column 2 \
(char 1)); delete ... to predict again
    """
    path = Path(folder) / PLAN
    if not path.is_file():
        return None
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(plan, dict) or any(k not in plan for k in PLAN_KEYS):
            raise ValueError("fields missing")
    except (ValueError, UnicodeDecodeError) as error:
        raise ShardError(
            f"{path}: not a shard plan ({error}); delete {folder} to "
            "predict again"
        ) from None
    return plan


def check_plan(folder, plan):
    """Refuses parts predicted under another plan (other inputs, another
    model or another number of shards).

    Arguments
    ---------
    folder : str or os.PathLike
        The parts folder.
    plan : dict
        This run's plan (:func:`make_plan`).

    Returns
    -------
    dict or None
        The recorded plan (with the output columns, once written), or
        None when there is none yet.

    Raises
    ------
    ShardError
        Naming what differs.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> plan = make_plan([("a.wav", None), ("b.wav", None)], 2, "org/m")
    >>> write_plan(folder, plan, {}) == plan
    True
    >>> check_plan(folder, dict(plan, shards=1))
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.shards.ShardError: ...plan.json: its parts \
were predicted with another number of shards (2, now 1); use the same \
command, another --output, or delete ... to predict again
    """
    recorded = read_plan(folder)
    if recorded is None:
        return None
    names = {
        "shards": "another number of shards",
        "inputs": "another number of inputs",
        "inputs_sha256": "other inputs or transcripts",
        "model": "another model",
        "backend": "another --backend",
        "asr": "another --asr_source",
    }
    for key in PLAN_KEYS:
        if recorded[key] != plan[key]:
            then = recorded[key]
            shown = (
                f" ({then}, now {plan[key]})"
                if key in ("shards", "inputs", "backend", "asr")
                else ""
            )
            raise ShardError(
                f"{Path(folder) / PLAN}: its parts were predicted with "
                f"{names[key]}{shown}; use the same command, another "
                f"--output, or delete {folder} to predict again"
            )
    return recorded


def write_plan(folder, plan, columns):
    """Records the plan (with the output ``columns``: labels, dimensions,
    rating scale) unless one is there: created exclusively, so shards
    started together agree on one; then checked as :func:`check_plan`.

    Arguments
    ---------
    folder : str or os.PathLike
        The parts folder (created if needed).
    plan : dict
        :func:`make_plan`'s fields.
    columns : dict
        What the merge needs to write the output without the model.

    Returns
    -------
    dict
        The recorded plan.

    Raises
    ------
    ShardError
        When another plan was recorded first.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> plan = make_plan([("a.wav", None)], 1, "org/m")
    >>> write_plan(folder, plan, {"labels": ["neu"]})["labels"]
    ['neu']
    >>> write_plan(folder, plan, {"labels": ["sad"]})["labels"]  # the first
    ['neu']
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"{PLAN}.{os.getpid()}.tmp"
    write_json(tmp, {**plan, **columns})
    try:
        os.link(tmp, folder / PLAN)  # fails if a plan is there
    except FileExistsError:
        pass
    except OSError:  # a file system without hard links: not exclusive
        if not (folder / PLAN).exists():
            os.replace(tmp, folder / PLAN)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
    return check_plan(folder, plan)


def _marker(part):
    return part.with_suffix(".done")


def finished_rows(part):
    """The rows of a finished part, or None when it is not finished.

    Arguments
    ---------
    part : pathlib.Path
        A part file.

    Returns
    -------
    int or None

    Raises
    ------
    ShardError
        When the part changed after it was marked finished (or is gone).

    Example
    -------
    >>> part = getfixture("tmp_path") / part_name(0, 1)
    >>> with PartWriter(part, [None]) as writer:
    ...     writer.write({"file": None, "label": "neu"})
    ...     finished_rows(part) is None
    ...     writer.finish()
    True
    >>> finished_rows(part)
    1
    >>> _ = part.write_text('{"file": null, "label": "sad"}\\n')
    >>> finished_rows(part)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.inference.shards.ShardError: ...part-00000-of-00001.\
jsonl: changed since it was finished (its digest is not the one in \
part-00000-of-00001.done); delete both to predict that part again
    """
    marker = _marker(part)
    if not marker.is_file():
        return None
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
        rows, digest = int(done["rows"]), done["sha256"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ShardError(
            f"{marker}: not a part marker; delete it and {part.name} to "
            "predict that part again"
        ) from None
    if not part.is_file() or file_digest(part) != digest:
        raise ShardError(
            f"{part}: changed since it was finished (its digest is not the "
            f"one in {marker.name}); delete both to predict that part again"
        )
    return rows


class PartWriter:
    """Appends one shard's rows to its part file, resuming an unfinished
    one after its last complete row.

    Arguments
    ---------
    part : str or os.PathLike
        The part file.
    files : list
        The input file (or None) of each row the part must hold, in order:
        a kept row must name its own.

    Example
    -------
    >>> part = getfixture("tmp_path") / part_name(0, 1)
    >>> with PartWriter(part, ["a.wav", "b.wav"]) as writer:
    ...     writer.write({"file": "a.wav", "label": "neu"})
    >>> _ = open(part, "a").write('{"file": "b.w')  # killed mid-row
    >>> writer = PartWriter(part, ["a.wav", "b.wav"])
    >>> with writer:
    ...     writer.done
    ...     writer.write({"file": "b.wav", "error": "OSError: bad"})
    ...     writer.finish()
    1
    >>> finished_rows(part), writer.failed
    (2, 1)
    """

    def __init__(self, part, files):
        self.part = Path(part)
        self.files = list(files)
        self.failed = 0
        self.done = self._resume()
        self.stream = None

    def _resume(self):
        """Keeps the complete, matching rows of an unfinished part."""
        if not self.part.exists():
            return 0
        with open(self.part, "rb") as fin:
            data = fin.read()
        complete = data[: data.rfind(b"\n") + 1]
        lines = complete.splitlines()
        for number, line in enumerate(lines, 1):
            problem = None
            try:
                row = json.loads(line)
            except (ValueError, UnicodeDecodeError):
                row, problem = None, "not a JSON row"
            if problem is None and number > len(self.files):
                problem = f"one row more than its {len(self.files)} inputs"
            elif problem is None and (
                not isinstance(row, dict)
                or row.get("file") != self.files[number - 1]
            ):
                problem = f"not the row of {self.files[number - 1]}"
            if problem:
                raise ShardError(
                    f"{self.part} line {number}: {problem} (edited, or "
                    "written for other inputs); delete it to predict its "
                    "inputs again"
                )
            self.failed += "error" in row
        if len(complete) < len(data):  # a row cut short by a kill
            with open(self.part, "r+b") as fout:
                fout.truncate(len(complete))
        return len(lines)

    def __enter__(self):
        self.stream = open(self.part, "a", encoding="utf-8", newline="\n")
        return self

    def __exit__(self, *exc):
        self.stream.close()

    def write(self, row):
        """Appends one row (as predicted: the output's writer rounds it)
        and flushes it."""
        self.stream.write(json.dumps(row) + "\n")
        self.stream.flush()
        self.done += 1
        self.failed += "error" in row

    def finish(self):
        """Marks the part finished: flushed to disk, then its marker
        (rows and digest) written atomically."""
        if self.done != len(self.files):
            raise ShardError(
                f"{self.part}: {self.done} rows of {len(self.files)}; run "
                "the same command again to finish it"
            )
        self.stream.flush()
        os.fsync(self.stream.fileno())
        write_json(
            _marker(self.part),
            {"rows": self.done, "sha256": file_digest(self.part)},
        )


def part_status(folder, plan, count):
    """Which parts of a plan are finished.

    Arguments
    ---------
    folder : str or os.PathLike
        The parts folder.
    plan : dict
        The plan (its ``shards``).
    count : int
        Number of inputs.

    Returns
    -------
    list of bool
        One per shard, in order.

    Raises
    ------
    ShardError
        A finished part that changed, or holds another number of rows.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> plan = make_plan([("a.wav", None), ("b.wav", None)], 2, "org/m")
    >>> with PartWriter(folder / part_name(1, 2), ["b.wav"]) as writer:
    ...     writer.write({"file": "b.wav"})
    ...     writer.finish()
    >>> part_status(folder, plan, 2)
    [False, True]
    """
    status = []
    for index in range(plan["shards"]):
        part = Path(folder) / part_name(index, plan["shards"])
        rows = finished_rows(part)
        start, stop = shard_bounds(count, index, plan["shards"])
        if rows is not None and rows != stop - start:
            raise ShardError(
                f"{part}: {rows} rows, not its {stop - start} inputs; delete "
                f"it and its marker to predict that part again"
            )
        status.append(rows is not None)
    return status


def read_parts(folder, plan):
    """The rows of every finished part, in input order, as their JSON
    lines (text, newline-terminated).

    Arguments
    ---------
    folder : str or os.PathLike
        The parts folder.
    plan : dict
        The recorded plan.

    Returns
    -------
    list of str

    Raises
    ------
    ShardError
        When a part is unfinished, or changed since it was finished.

    Example
    -------
    >>> folder = getfixture("tmp_path")
    >>> plan = make_plan([("a.wav", None), ("b.wav", None)], 2, "org/m")
    >>> for index, file in enumerate(["a.wav", "b.wav"]):
    ...     with PartWriter(folder / part_name(index, 2), [file]) as writer:
    ...         writer.write({"file": file})
    ...         writer.finish()
    >>> read_parts(folder, plan)
    ['{"file": "a.wav"}\\n', '{"file": "b.wav"}\\n']
    """
    lines = []
    for index in range(plan["shards"]):
        part = Path(folder) / part_name(index, plan["shards"])
        if finished_rows(part) is None:
            raise ShardError(f"{part}: not finished; run its shard again")
        data = part.read_bytes()
        marker = json.loads(_marker(part).read_text(encoding="utf-8"))
        if hashlib.sha256(data).hexdigest() != marker["sha256"]:
            raise ShardError(f"{part}: changed while it was read")
        lines.extend(data.decode("utf-8").splitlines(keepends=True))
    return lines
