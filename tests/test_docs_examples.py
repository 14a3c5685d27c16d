"""The docs' examples, run: every fenced shell or Python block of the
README, the recipe READMEs and the documentation site (issue 30, item 6).

A short runner of our own: pytest-examples and phmdoctest run Python
blocks only, and mktestdocs runs a shell block as written, with no place to
point ``/data/IEMOCAP_full_release`` at a synthetic corpus, to shrink a
training to one epoch of the light encoders, or to list the blocks that
cannot run here with a reason.

Every ``bash``/``sh``/``python`` block of :data:`DOCS` is in
:data:`EXAMPLES`, keyed by its file and a snippet of its text: a
:class:`Run` (run in the slow step of CI, after the substitutions it
names), :class:`Same` (the same command as a block run elsewhere) or a
string (why it is not run). Blocks in an output or data language
(:data:`NOT_COMMANDS`) are skipped by rule; a fence with no language, a
block in no entry or an entry matching no block fails the fast test
:func:`test_every_example_of_the_docs_is_run_or_listed_with_a_reason`.

Each file's blocks run in order in one work folder (a copy of the
checkout's tracked files: ``recipes/`` copied, the rest linked), so a block
can use what an earlier one wrote (export, then predict); shell blocks run
under ``set -euo pipefail`` with ``mtmm``, ``python`` and ``torchrun``
bound to this interpreter. The figures the docs quote from the demo and
the walkthroughs are compared with the ``test_results.json`` of the same
commands (:data:`FIGURES`).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import soundfile

from speechbrain_mtmm.data.synthetic import RELEASE_DIRNAME
from speechbrain_mtmm.data.synthetic_csv import generate_synthetic_csv_corpus
from speechbrain_mtmm.data.synthetic_msp import generate_synthetic_msp_podcast
from speechbrain_mtmm.testing.recipes import OFFLINE_ENV
from speechbrain_mtmm.testing.tiny_models import build_tiny_whisper

ROOT = Path(__file__).resolve().parents[1]
IEMOCAP_README = "recipes/IEMOCAP/multimodal_emotion/README.md"
MSP_README = "recipes/MSP-Podcast/multimodal_emotion/README.md"
#: The files whose examples are run, relative to the checkout
DOCS = (
    "README.md",
    IEMOCAP_README,
    MSP_README,
    "benchmarks/README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
)
#: Fence languages of commands (run or listed)
COMMANDS = {"bash", "sh", "shell", "python"}
#: Fence languages of what is not a command, skipped by rule
NOT_COMMANDS = {"text", "console", "output", "yaml", "json", "csv", "toml"}
#: The light encoders at toy width, one epoch: a training of seconds
LIGHT = (
    " --audio_source=fbank --text_source=hashing --d_model=64 --n_heads=4"
    " --refinement_ffn=128 --bridge_tokens=8 --lr=0.001"
    " --batch_size=8 --num_workers=0 --ckpt_interval_minutes=0"
    " --number_of_epochs=1 --device=cpu"
)
#: A sweep cut to one run (fold 1, seed 1) of the light encoders
ONE_RUN = " --folds 1 --seeds 1" + LIGHT
#: A sweep's commands printed, nothing trained (the runs are shown above)
PRINTED = " --print-commands" + LIGHT
#: Paths of the docs and what they stand for here ({work}: the work folder)
SUBSTITUTIONS = (
    ("/data/IEMOCAP_full_release", "{iemocap}"),
    ("/data/MSP-PODCAST", "{msp}"),
    ("--data_folder=...", "--data_folder={iemocap}"),
    ("results/paper/speaker_fold1/seed1", "{light_run}"),
    ("openai/whisper-small", "{whisper}"),
    ("/tmp/", "{work}/tmp/"),
)
REASON_MAKE = (
    "make's targets install the pinned dependencies with pip, then run "
    "`mtmm demo` (run by test_the_demo_gives_the_figures_the_docs_quote) "
    "or CI's own steps (.ci/run)"
)
REASON_SLURM = (
    "needs a SLURM cluster with GPU partitions; tests/test_slurm.py runs "
    "a sweep with --launcher slurm on CI's one-node cluster "
    "(.ci/slurm_cluster)"
)
REASON_SERVE = (
    "starts a server that runs until stopped; tests/test_serve.py starts "
    "`mtmm serve` on a trained export and posts this request"
)


@dataclass(frozen=True)
class Run:
    """A block run in the slow step, after :data:`SUBSTITUTIONS` and

    ``append`` (arguments added to each command starting with a key),
    ``replace`` (its own text substitutions), ``drop`` (lines starting with
    one of these are left out, e.g. ``pip install``: the dependencies are
    installed from constraints.txt) and ``prefix`` (Python run before a
    block that continues an earlier one)."""

    append: tuple = ()
    replace: tuple = ()
    drop: tuple = ()
    prefix: str = ""


@dataclass(frozen=True)
class Same:
    """The same command as the block of ``doc`` holding ``snippet``,
    which is run there."""

    doc: str
    snippet: str


TRAIN = (("python train.py", LIGHT),)
PIP = ("pip install",)

#: Every command block of DOCS: (file, a snippet of the block) -> what
#: happens to it. A new or changed block that matches no entry fails the
#: fast test: add a Run, a Same or a reason here.
EXAMPLES = {
    # ---- README.md ----
    ("README.md", "make demo    # train and test one fold"): REASON_MAKE,
    ("README.md", "python train.py hparams/iemocap.yaml --data_folder="): Run(
        append=TRAIN
    ),
    ("README.md", "--seeds 1 2 3 --jobs 4 --data_folder"): Run(
        append=(("mtmm cv", ONE_RUN),)
    ),
    ("README.md", "mtmm export --run results/paper"): Run(),
    ("README.md", "mtmm prepare csv --manifest corpus.csv"): Run(),
    ("README.md", "mtmm serve --model my_model"): REASON_SERVE,
    ("README.md", "--launcher slurm --slurm_partition gpu"): REASON_SLURM,
    # ---- the IEMOCAP recipe ----
    (IEMOCAP_README, "iemocap.yaml --data_folder=/data/IEMOCAP"): Same(
        "README.md", "python train.py hparams/iemocap.yaml --data_folder="
    ),
    (IEMOCAP_README, "models/wavlm-large.yaml"): (
        "paper-size WavLM-large (a download); each preset included in one "
        "line is built on a tiny model of its family by tests/"
        "test_training_options.py::"
        "test_each_encoder_preset_included_in_one_line_builds_its_encoder"
    ),
    (IEMOCAP_README, "--fusion_type=my_package.fusion.GatedSum"): (
        "placeholder: my_package is the reader's own module"
    ),
    (IEMOCAP_README, "python train.py hparams/mmer.yaml"): Run(
        # MMER's fusion layers at toy width, as tests/recipes/IEMOCAP.csv
        append=(
            ("python train.py", LIGHT + " --fusion_ffn=128"),
            ("mtmm cv", PRINTED),
        ),
        replace=(("--fold=3 ...", "--fold=3 --data_folder={iemocap}"),),
    ),
    (IEMOCAP_README, "mtmm synth --out /tmp/syn"): Run(),
    (IEMOCAP_README, "mtmm synth --corpus csv --out /tmp/mine"): Run(),
    # ---- the MSP-Podcast recipe ----
    (MSP_README, "pip install -r extra_requirements.txt"): Run(
        append=TRAIN, drop=PIP
    ),
    (MSP_README, "mtmm prepare msp-podcast"): Run(
        append=(("mtmm cv", PRINTED),)
    ),
    (MSP_README, "mtmm export --run results/msp_podcast"): Run(),
    (MSP_README, "mtmm synth --corpus msp-podcast --out /tmp/msp"): Run(),
    # ---- benchmarks ----
    ("benchmarks/README.md", "python benchmarks/cache_cv.py --quick"): (
        "measurements of minutes; tests/test_benchmarks.py checks that each "
        "script takes the options listed here and runs gpu.sh --dry-run"
    ),
    # ---- docs/ ----
    ("docs/corpora.md", "mtmm prepare --data_folder"): Run(),
    ("docs/corpora.md", "mtmm prepare msp-podcast --data_folder"): Run(),
    ("docs/corpora.md", "mtmm prepare csv --manifest corpus.csv"): Run(
        append=(*TRAIN, ("mtmm cv", PRINTED))
    ),
    ("docs/corpora.md", "mtmm synth --out /tmp/syn"): Run(
        append=(("mtmm synth", " --size tiny"),)
    ),
    ("docs/cross-validation.md", "mtmm cv recipes/IEMOCAP"): Run(
        append=(("mtmm cv", PRINTED),)
    ),
    ("docs/cross-validation.md", "mtmm table recipes/IEMOCAP"): Run(
        append=(("mtmm table", PRINTED),)
    ),
    ("docs/cluster.md", 'pip install "speechbrain-mtmm[cluster]"'): (
        "installs from the package registry; " + REASON_SLURM
    ),
    ("docs/cluster.md", "xargs scancel"): (
        "needs a sweep's record and a cluster; tests/test_slurm.py reads "
        "the record (slurm.read_record) to cancel and check jobs"
    ),
    ("docs/cluster.md", "srun torchrun --nnodes"): (
        "needs several GPU nodes; tests/test_ddp.py runs the recipe under "
        "torchrun (two processes, gloo)"
    ),
    ("docs/development.md", "make install"): REASON_MAKE,
    ("docs/index.md", "make demo"): REASON_MAKE,
    ("docs/recipes.md", "cd recipes/IEMOCAP"): Same(
        "README.md", "python train.py hparams/iemocap.yaml --data_folder="
    ),
    ("docs/recipes.md", "cd recipes/MSP-Podcast"): Same(
        MSP_README, "pip install -r extra_requirements.txt"
    ),
    ("docs/recipes.md", "mtmm export --run results/msp_podcast"): Same(
        MSP_README, "mtmm export --run results/msp_podcast"
    ),
    ("docs/recipes.md", "python train.py hparams/mmer.yaml"): Same(
        IEMOCAP_README, "python train.py hparams/mmer.yaml"
    ),
    ("docs/recipes.md", "--fusion_type=my_package.fusion.GatedSum"): (
        "placeholder: my_package is the reader's own module"
    ),
    ("docs/recipes.md", "--transcripts=asr"): Run(
        append=(("python train.py", " --data_folder={iemocap}" + LIGHT),),
        replace=(
            (
                "python train.py",
                "cd recipes/IEMOCAP/multimodal_emotion && python train.py",
            ),
        ),
    ),
    ("docs/recipes.md", "torchrun --nproc_per_node=4"): (
        "needs 4 GPUs; tests/test_ddp.py runs the CPU command below"
    ),
    ("docs/recipes.md", "torchrun --nproc_per_node=2"): (
        "run as written (two processes, gloo) by tests/test_ddp.py"
    ),
    ("docs/serving.md", 'pip install "speechbrain-mtmm[serve]"'): (
        "installs from the package registry and starts a server; "
        + REASON_SERVE
    ),
    ("docs/serving.md", "curl -F audio=@utt.wav"): REASON_SERVE,
    ("docs/serving.md", "import requests"): REASON_SERVE,
    (
        "docs/sharing.md",
        "mtmm export --run results/paper/speaker_fold1/seed1 --out my_model\n",
    ): Run(),
    ("docs/sharing.md", "MultimodalEmotionRecognizer.from_hparams"): Run(),
    ("docs/sharing.md", "foreign_class("): Run(),
    ("docs/sharing.md", "mtmm predict --model my_model a.wav b.flac"): Run(),
    ("docs/sharing.md", "--format csv --output predictions.csv --shards"): (
        Run()
    ),
    ("docs/sharing.md", "--output shards.jsonl --shard $i/2"): Run(),
    ("docs/sharing.md", "mtmm export --sweep results/cv/paper"): (
        "needs a finished sweep; tests/test_sharing.py exports one"
    ),
    ("docs/sharing.md", "--model my_model --model other_model"): Run(
        # one export here: the same model twice is an ensemble as well
        replace=(("--model other_model", "--model my_model"),)
    ),
    ("docs/sharing.md", "mtmm predict --model paper_models a.wav"): (
        "needs a finished sweep's export; tests/test_ensemble.py predicts "
        "with a sweep export folder's layout"
    ),
    ("docs/sharing.md", "EnsembleRecognizer(models, weights"): (
        "needs two exports; tests/test_ensemble.py averages two"
    ),
    ("docs/sharing.md", "--onnx --int8"): Run(
        # the page's first export wrote my_model: replaced, as a reader
        # trying both would
        replace=(
            ("--out my_model --onnx", "--out my_model --overwrite --onnx"),
        )
    ),
    ("docs/sharing.md", "MultimodalEmotionRecognizer.from_onnx"): Run(
        prefix="from speechbrain_mtmm.inference import "
        "MultimodalEmotionRecognizer\n"
    ),
    ("docs/sharing.md", "python docs/onnx_client.py"): Run(drop=PIP),
}


@dataclass(frozen=True)
class Block:
    """A fenced block: its file, first line number, language and text."""

    doc: str
    line: int
    language: str
    text: str

    def where(self):
        """``file:line`` of its opening fence."""
        return f"{self.doc}:{self.line}"


FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)(?P<info>.*)$")


def read_blocks(doc):
    """The fenced blocks of a Markdown file (relative to the checkout),
    their text dedented by the opening fence's indent."""
    blocks, lines = [], (ROOT / doc).read_text(encoding="utf-8").splitlines()
    opened = None
    for number, line in enumerate(lines, 1):
        match = FENCE.match(line)
        if opened is None and match:
            opened = (number, match, [])
        elif opened is not None:
            start, first, body = opened
            if match and match["fence"].startswith(first["fence"]):
                if not match["info"].strip():
                    language = first["info"].strip().split(" ")[0].lower()
                    text = "\n".join(body) + "\n"
                    blocks.append(Block(doc, start, language, text))
                    opened = None
                    continue
            body.append(line[len(first["indent"]) :])
    return blocks


def entry_of(block):
    """The key of EXAMPLES whose snippet the block holds (None if none)."""
    keys = [
        key for key in EXAMPLES if key[0] == block.doc and key[1] in block.text
    ]
    return keys[0] if len(keys) == 1 else None


def inventory_problems(docs):
    """What the authors of ``docs`` must do: a message per fence with no
    or an unknown language, per command block in no entry (or in
    several) of EXAMPLES, per entry of theirs matching no block or several
    and per Same naming no Run."""
    problems = []
    for doc in docs:
        for block in read_blocks(doc):
            if not block.language:
                problems.append(
                    f"{block.where()}: a fence with no language; write "
                    "```bash or ```python for a command (it is run by "
                    "this test), ```text for output"
                )
            elif block.language not in COMMANDS | NOT_COMMANDS:
                problems.append(
                    f"{block.where()}: fence language {block.language!r} "
                    f"is neither a command ({sorted(COMMANDS)}) nor "
                    f"output ({sorted(NOT_COMMANDS)}): add it to one"
                )
    matched = {}
    for block in (b for d in docs for b in read_blocks(d)):
        if block.language not in COMMANDS:
            continue
        keys = [k for k in EXAMPLES if k[0] == block.doc and k[1] in block.text]
        if len(keys) != 1:
            first = block.text.splitlines()[0]
            problems.append(
                f"{block.where()}: the {block.language} block starting "
                f"{first!r} matches {len(keys)} entries of EXAMPLES in "
                f"{__file__}: give it one, a Run (with the substitutions "
                "that make it run on the synthetic corpora and tiny "
                "models), a Same, or the reason it cannot run here"
            )
        for key in keys:
            matched.setdefault(key, []).append(block.where())
    for key, value in EXAMPLES.items():
        if key[0] not in docs:
            continue
        if key not in matched:
            problems.append(
                f"EXAMPLES entry {key} matches no block of {key[0]}: the "
                "block changed or is gone; update or remove the entry"
            )
        elif len(matched[key]) > 1:
            problems.append(
                f"EXAMPLES entry {key} matches {matched[key]}: make its "
                "snippet longer"
            )
        if isinstance(value, Same) and entry_of_key(value) is None:
            problems.append(f"{key}: Same names no Run entry: {value}")
    return problems


def test_every_example_of_the_docs_is_run_or_listed_with_a_reason():
    problems = inventory_problems(DOCS)
    assert not problems, "\n".join(problems)


def entry_of_key(same):
    """The Run entry a Same points to (None if it is not one)."""
    value = EXAMPLES.get((same.doc, same.snippet))
    return value if isinstance(value, Run) else None


def test_a_new_block_or_an_untagged_fence_fails_saying_what_to_do(tmp_path):
    doc = tmp_path / "new.md"
    doc.write_text("text\n\n```bash\nmtmm new-verb\n```\n\n```\nx\n```\n")
    problems = inventory_problems([str(doc)])
    assert problems == [
        f"{doc}:7: a fence with no language; write ```bash or ```python "
        "for a command (it is run by this test), ```text for output",
        f"{doc}:3: the bash block starting 'mtmm new-verb' matches 0 "
        f"entries of EXAMPLES in {__file__}: give it one, a Run (with the "
        "substitutions that make it run on the synthetic corpora and tiny "
        "models), a Same, or the reason it cannot run here",
    ]


def test_indented_blocks_are_read_dedented():
    blocks = [b for b in read_blocks("README.md") if b.language == "bash"]
    export = next(b for b in blocks if "mtmm export" in b.text)
    assert export.text.startswith("mtmm export --run")


# ##### Running them (slow) #####


def shell_script(block, run, values):
    """The block as a bash script: continuations joined, lines of
    ``run.drop`` left out, ``run.append`` added to each matching command
    (before a trailing comment), substitutions made."""
    text = block.text.replace("\\\n", " ")
    for old, new in run.replace:
        text = text.replace(old, new)
    lines = []
    for line in text.splitlines():
        comment = re.search(r"\s#\s", line)
        cut = comment.start() if comment else len(line)
        command, comment = line[:cut], line[cut:]
        if run.drop and command.strip().startswith(run.drop):
            continue
        for start, extra in run.append:
            if start in command:
                command = command.rstrip() + extra
        lines.append(command + comment)
    return HEADER + fill("\n".join(lines) + "\n", values)


def fill(text, values):
    """``text`` after :data:`SUBSTITUTIONS`, ``{name}`` replaced by
    ``values[name]``."""
    for old, new in SUBSTITUTIONS:
        text = text.replace(old, new)
    for name, value in values.items():
        text = text.replace("{" + name + "}", str(value))
    return text


HEADER = """set -euo pipefail
mtmm() { "$MTMM_PYTHON" -m speechbrain_mtmm "$@"; }
python() { "$MTMM_PYTHON" "$@"; }
torchrun() { "$MTMM_PYTHON" -m torch.distributed.run "$@"; }
"""


def python_script(block, run, values):
    """The block as a Python file, after ``run.prefix``."""
    return fill(run.prefix + block.text, values)


def work_folder(folder):
    """A copy of the checkout to run a file's blocks in: ``recipes/``
    copied (runs write beside the recipe), the other tracked top-level
    entries linked."""
    folder.mkdir(parents=True)
    tracked = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert tracked, f"{ROOT} is not a git checkout: the docs' examples need one"
    for name in sorted({path.split("/")[0] for path in tracked}):
        if name == "recipes":
            shutil.copytree(
                ROOT / name,
                folder / name,
                ignore=shutil.ignore_patterns("results", "__pycache__"),
            )
        elif (ROOT / name).exists():
            (folder / name).symlink_to(ROOT / name)
    return folder


def inputs(folder, wavs, csv_corpus):
    """The files the examples name: utt.wav, a.wav, b.flac, speech.wav,
    recordings/, manifest.csv, transcripts.csv, corpus.csv."""
    for name, wav in zip(("utt.wav", "a.wav", "speech.wav"), wavs):
        shutil.copy(wav, folder / name)
    audio, rate = soundfile.read(wavs[3])
    soundfile.write(folder / "b.flac", audio, rate)
    (folder / "recordings" / "day1").mkdir(parents=True)
    for k, wav in enumerate(wavs[4:6]):
        shutil.copy(wav, folder / "recordings" / "day1" / f"r{k}.wav")
    (folder / "m.wav").write_bytes(Path(wavs[6]).read_bytes())
    (folder / "manifest.csv").write_text("path,text\nm.wav,Well okay.\n")
    (folder / "transcripts.csv").write_text(
        "path,text\na.wav,I got the job!\nb.flac,Leave me alone.\n"
    )
    for path in csv_corpus.iterdir():
        (folder / path.name).symlink_to(path)


@pytest.fixture(scope="module")
def doc_values(tmp_path_factory, synthetic_corpus, light_run):
    """The fixtures the substitutions name: ``iemocap`` (a synthetic
    release), ``msp`` (a synthetic MSP-Podcast release), ``light_run`` (a
    copy of the light run), ``whisper`` (a tiny local Whisper), the wavs
    and a CSV corpus for :func:`inputs`."""
    base = tmp_path_factory.mktemp("doc_inputs")
    generate_synthetic_msp_podcast(base, n_utterances=120, seed=0)
    generate_synthetic_csv_corpus(base / "csv", n_speakers=6, per_speaker=4)
    release = synthetic_corpus / RELEASE_DIRNAME
    wavs = sorted(release.glob("Session1/sentences/wav/*/*.wav"))[:7]
    # multilingual, as openai/whisper-small
    whisper = build_tiny_whisper(base / "whisper", languages=("en", "de"))
    return {
        "iemocap": str(release),
        "msp": str(base / "MSP-PODCAST"),
        "light_run": str(shutil.copytree(light_run.folder, base / "run")),
        "whisper": str(whisper),
        "wavs": wavs,
        "csv_corpus": base / "csv" / "csv_corpus",
    }


def blocks_to_run(doc):
    """The Run blocks of a file, in order, with their entries."""
    return [
        (block, EXAMPLES[entry_of(block)])
        for block in read_blocks(doc)
        if block.language in COMMANDS
        and isinstance(EXAMPLES.get(entry_of(block)), Run)
    ]


def run_doc(doc, work, values):
    """Runs a file's blocks in order in ``work``; returns the failure of
    the first that fails (its place, script and output's end) or None."""
    values = {**values, "work": str(work)}
    recipe = work / Path(doc).parent if doc.startswith("recipes/") else work
    env = {
        **os.environ,
        **OFFLINE_ENV,
        "MTMM_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        ),
    }
    env.pop("OMP_NUM_THREADS")  # as a user runs them
    for block, run in blocks_to_run(doc):
        if block.language == "python":
            script = work / f"block_{block.line}.py"
            script.write_text(python_script(block, run, values))
            command = [sys.executable, str(script)]
        else:
            script = shell_script(block, run, values)
            command = ["bash", "-c", script]
        # a block that goes to a recipe starts at the checkout's root
        cwd = work if "cd recipes/" in block.text else recipe
        start = time.monotonic()
        result = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True
        )
        print(f"{block.where()}: {time.monotonic() - start:.1f} s")
        if result.returncode:
            output = (result.stdout + result.stderr)[-3000:]
            return f"{block.where()} failed:\n{script}\n---\n{output}"
    return None


@pytest.fixture(scope="module")
def ran_docs(tmp_path_factory, doc_values):
    """``ran_docs(doc)`` runs a file's blocks once and returns its work
    folder and its failure (None when all ran)."""
    done = {}

    def run(doc):
        """Runs ``doc``'s blocks on the first call."""
        if doc not in done:
            work = work_folder(tmp_path_factory.mktemp("docs") / "checkout")
            inputs(work, doc_values["wavs"], doc_values["csv_corpus"])
            done[doc] = (work, run_doc(doc, work, doc_values))
        return done[doc]

    return run


DOCS_RUN = [doc for doc in DOCS if blocks_to_run(doc)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS_RUN)
def test_the_examples_of_each_doc_run_as_written(doc, ran_docs):
    _, failure = ran_docs(doc)
    assert failure is None, failure


# ##### The figures the docs quote #####


def pct(value):
    """A score in %, as the results tables write it: 100.0, 61.5."""
    return f"{100 * value:.1f}"


def ccc(value):
    """A CCC (or a fraction) without its leading zero: .769, -.021."""
    return f"{value:.3f}".replace("0.", ".", 1)


def scores(results):
    """WA, UA and macro-F1 as the docs' prose writes them: one figure
    when they are equal ("WA, UA and macro-F1 100")."""
    values = [pct(results[k]).removesuffix(".0") for k in SCORES]
    if len(set(values)) == 1:
        return f"WA, UA and macro-F1 {values[0]}"
    return ", ".join(
        f"{k.replace('_', '-')} {v}" for k, v in zip(SCORES, values)
    )


SCORES = ("WA", "UA", "macro_F1")


def table_row(results, dims=("valence", "arousal")):
    """The cells of README.md's results table from a test_results.json:
    utterances, WA, UA, macro-F1 in %, CCCs."""
    cells = [str(results["n"]), *(pct(results[k]) for k in SCORES)]
    cells.append(" / ".join(ccc(results[f"CCC_{d}"]) for d in dims))
    return "| " + " | ".join(cells) + " |"


def quoted(doc, marker, expected):
    """Fails unless ``expected`` follows ``marker`` in ``doc`` (within its
    line for a table row, within 400 characters for prose; line breaks
    read as spaces)."""
    text = (ROOT / doc).read_text(encoding="utf-8")
    whole = " ".join(text.split())
    assert marker in whole, f"{doc}: {marker!r} is gone; update FIGURES"
    after = whole[whole.index(marker) :]
    rows = [line for line in text.splitlines() if marker in line]
    window = rows[0] if rows and rows[0].startswith("|") else after[:400]
    assert expected in window, (
        f"{doc}: the figures after {marker!r} are not those of the run: "
        f"expected {expected!r} in {window!r}"
    )


def user_env():
    """The environment of a user's shell: offline, this checkout's code,
    the machine's threads."""
    env = {**os.environ, **OFFLINE_ENV}
    env.pop("OMP_NUM_THREADS")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    return env


@pytest.fixture(scope="module")
def demo_results(tmp_path_factory):
    """The test_results.json of ``mtmm demo`` (what ``make demo`` runs
    after installing), run once from the checkout."""
    out = tmp_path_factory.mktemp("demo")
    command = [sys.executable, "-m", "speechbrain_mtmm", "demo"]
    result = subprocess.run(
        [*command, "--out", str(out)],
        cwd=ROOT,
        env=user_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return json.loads((out / "run" / "test_results.json").read_text())


def walkthrough_results(ran_docs, doc, run):
    """The test_results.json that a doc's walkthrough wrote in ``run``
    (under its work folder, where /tmp/ stands)."""
    work, failure = ran_docs(doc)
    assert failure is None, failure
    return json.loads((work / run / "test_results.json").read_text())


@pytest.mark.slow
def test_the_demo_gives_the_figures_the_docs_quote(demo_results):
    gold, none = demo_results, demo_results["conditions"]["none"]
    row = "tiny random HuBERT + DeBERTa-v2, 6) | `make demo`"
    quoted("README.md", row, table_row(gold))
    quoted("README.md", "the same, tested without transcripts", table_row(none))
    quoted(
        IEMOCAP_README,
        "the demo, seed 1):",
        f"{scores(gold)}, CCC-V {ccc(gold['CCC_valence'])}, CCC-A "
        f"{ccc(gold['CCC_arousal'])} on {gold['n']} test utterances",
    )
    quoted(
        IEMOCAP_README,
        "tested without transcripts: WA",
        f"tested without transcripts: WA {pct(none['WA'])}, CCC-V "
        f"{ccc(none['CCC_valence'])}",
    )
    quoted(
        IEMOCAP_README,
        "puts valence in the words), CCC-A",
        f"CCC-A {ccc(none['CCC_arousal'])}.",
    )


@pytest.mark.slow
def test_the_iemocap_walkthrough_gives_the_figures_the_readme_quotes(
    ran_docs,
):
    results = walkthrough_results(ran_docs, IEMOCAP_README, "tmp/syn/run")
    row = "(light fbank + hashing, 6) | IEMOCAP recipe, *Try it without"
    quoted("README.md", row, table_row(results))
    quoted(
        IEMOCAP_README,
        "6 synthetic speakers x 20",
        scores_csv(walkthrough_results(ran_docs, IEMOCAP_README, CSV_RUN)),
    )


CSV_RUN = "tmp/mine/run"


def scores_csv(results):
    """The CSV walkthrough's sentence: gold, then audio only."""
    none = results["conditions"]["none"]
    return (
        f"{scores(results)}, CCC valence {ccc(results['CCC_valence'])}, "
        f"arousal {ccc(results['CCC_arousal'])} on the {results['n']} "
        f"utterances of the two test speakers; audio only: WA "
        f"{pct(none['WA'])}, CCC valence {ccc(none['CCC_valence'])} (the "
        f"words carry valence), arousal {ccc(none['CCC_arousal'])}."
    )


@pytest.mark.slow
def test_the_csv_walkthrough_gives_the_figures_the_readme_quotes(ran_docs):
    results = walkthrough_results(ran_docs, IEMOCAP_README, CSV_RUN)
    quoted("README.md", "CSV manifest, 6 speakers", table_row(results))


@pytest.mark.slow
def test_the_msp_walkthrough_gives_the_figures_the_readmes_quote(ran_docs):
    results = walkthrough_results(ran_docs, MSP_README, "tmp/msp/run")
    dims = ("valence", "arousal", "dominance")
    quoted("README.md", "MSP-Podcast layout, Test1", table_row(results, dims))
    rows = {
        ("Test1", "gold"): results["test_sets"]["Test1"],
        ("Test1", "none"): results["conditions"]["none"],
        ("Test2", "gold"): results["test_sets"]["Test2"],
    }
    for (test_set, transcripts), scores_ in rows.items():
        cells = [test_set, transcripts]
        for key in ("macro_F1", "micro_F1", "UA", "CCC_arousal"):
            cells.append(f"{scores_[key]:.3f}")
        for key in ("CCC_valence", "CCC_dominance"):
            cells.append(f"{scores_[key]:.3f}")
        row = "| " + " | ".join(cells) + " |"
        quoted(MSP_README, f"| {test_set} | {transcripts} |", row)
