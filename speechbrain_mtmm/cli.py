"""``mtmm <verb>``: the toolkit's one command (also ``python -m
speechbrain_mtmm``).

Verbs, each with ``--help``::

    mtmm prepare   IEMOCAP manifest + speaker-independent folds, or
                   (mtmm prepare msp-podcast) MSP-Podcast's official split,
                   or (mtmm prepare csv) any corpus from a CSV manifest
    mtmm folds     the folds of a prepared manifest again
    mtmm synth     a synthetic corpus: IEMOCAP, MSP-Podcast or CSV layout
    mtmm demo      synthetic corpus + tiny models + one fold of the recipe
    mtmm cv        every fold x seed of a recipe, then a report
    mtmm table     the paper's ablation table as cross-validation sweeps
    mtmm export    a trained run as a self-contained model folder
    mtmm predict   emotions of audio files (and transcripts) from the shell
    mtmm serve     a model behind an HTTP API and a web page

This module only parses arguments and calls the library; a bad input ends
with one line on stderr and a non-zero exit code (2 for usage errors).
Help and usage errors are instant: the parser is built from light modules
(no torch, SpeechBrain or transformers), and each verb's handler imports
the code it runs, after the checks that need none of it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import argparse
import json
import os
import sys

from speechbrain_mtmm.data.catalog import (
    CATALOG,
    LABEL_MAPS,
    SPEAKER_VALID_RULES,
)
from speechbrain_mtmm.experiments.options import (
    DEFAULT_SEEDS,
    OVERRIDES_HELP,
    ROWS,
    TASKS,
    parse_overrides,
    recipe_folder,
)
from speechbrain_mtmm.inference.model_source import BACKENDS, export_source
from speechbrain_mtmm.locks import FolderBusyError
from speechbrain_mtmm.quiet import quiet_third_party
from speechbrain_mtmm.serving.settings import (
    API_KEY_VARIABLE,
    TRUST_NOTE,
    ServeLimits,
)

# Help must be instant: this module imports only light modules (no torch,
# SpeechBrain, transformers; tests/test_layout.py checks it), and each verb
# handler below (and main) imports what it runs: the one place where the
# package imports inside functions.

# verbs whose unknown --key=value arguments are recipe overrides
TAKES_OVERRIDES = ("cv", "table")


def _option(args, name):
    """A ``mtmm prepare`` option as the preparation takes it."""
    value = getattr(args, name)
    if name == "labels":  # a,b,c
        labels = [x.strip() for x in (value or "").split(",")]
        return [x for x in labels if x] or None
    return value


def _prepare(args):
    entry = CATALOG[args.corpus]
    source = getattr(args, entry.source)
    if not source:
        print(
            f"mtmm prepare {entry.name}: error: --{entry.source} is required",
            file=sys.stderr,
        )
        return 2
    from speechbrain_mtmm.data.corpora import CORPORA

    record = CORPORA[args.corpus]
    options = {name: _option(args, name) for name in record.options}
    prepared = record.prepare(source, args.save_folder, **options)
    print(record.report(prepared, args.save_folder))
    return 0


def _folds(args):
    from speechbrain_mtmm.data.folds import write_folds

    path = write_folds(
        args.manifest, args.save_folder, speaker_valid=args.speaker_valid
    )
    print(path)
    return 0


def _synth(args):
    try:
        size = CATALOG[args.corpus].size(args.size)
    except ValueError as error:
        print(f"mtmm synth: error: {error}", file=sys.stderr)
        return 2
    from speechbrain_mtmm.data.corpora import CORPORA

    record = CORPORA[args.corpus]
    count = record.synthesize(args.out, args.seed, size)
    source = os.path.join(args.out, record.synthetic_source)
    print(f"wrote {count} utterances of a synthetic {record.name} to {source}")
    return 0


def _demo(args):
    from speechbrain_mtmm.demo import run_demo

    run_demo(
        args.out, args.recipe, args.light, args.size, args.fold, args.corpus
    )
    return 0


def _cv(args):
    recipe_folder(args.hparams_file)  # a missing recipe, before the imports
    from speechbrain_mtmm.experiments.sweep import run_cv

    return run_cv(
        args.hparams_file,
        protocol=args.protocol,
        seeds=args.seeds,
        folds=args.folds,
        jobs=args.jobs,
        output=args.output,
        overrides=args.overrides,
        print_commands=args.print_commands,
        launcher=args.launcher,
        slurm=_slurm_options(args),
    )


def _table(args):
    recipe_folder(args.hparams_file)  # a missing recipe, before the imports
    from speechbrain_mtmm.experiments.ablation import run_table

    return run_table(
        args.hparams_file,
        rows=args.rows,
        tasks=args.tasks,
        protocol=args.protocol,
        seeds=args.seeds,
        folds=args.folds,
        jobs=args.jobs,
        output=args.output,
        overrides=args.overrides,
        print_commands=args.print_commands,
        launcher=args.launcher,
        slurm=_slurm_options(args),
    )


def _export(args):
    from speechbrain_mtmm.inference.onnx_runtime import ONNX_FOLDER, ONNX_INFO
    from speechbrain_mtmm.run_folder import EXPORT_INFO, read_json
    from speechbrain_mtmm.sharing.export import export_model, export_sweep

    options = (args.asr_source, args.overwrite, args.onnx, args.int8)
    if args.sweep:
        out = export_sweep(args.sweep, args.out, args.protocol, *options)
        members = sorted(out.glob(f"{args.protocol}_fold*/seed*"))
        print(f"exported {len(members)} runs of {args.sweep} to {out}")
        return 0
    out = export_model(args.run, args.out, *options)
    with open(out / EXPORT_INFO, encoding="utf-8") as fin:
        info = json.load(fin)
    score = info["validation"].get("score")
    print(
        f"exported {info['checkpoint']} (validation score {score}) of "
        f"{info['run_folder']} to {out.resolve()}"
    )
    if args.onnx or args.int8:
        onnx = read_json(out / ONNX_FOLDER / ONNX_INFO)
        worst = onnx["max_abs_difference"]["end_to_end"]
        where = out / ONNX_FOLDER
        print(
            f"ONNX graphs in {where}; probabilities and dimensions within "
            f"{worst:.1e} of PyTorch's"
        )
    return 0


def _model_error(args):
    """``mtmm predict|serve``: the usage error of a ``--model`` that is
    neither a folder nor a hub id, before the model code is imported (as
    loading it would report it), or None."""
    models = [args.model] if isinstance(args.model, str) else args.model
    for model in models:
        try:
            export_source(model)
        except ValueError as error:
            print(
                f"mtmm {args.verb}: error: cannot load the model {model}: "
                f"{error}",
                file=sys.stderr,
            )
            return 2
    return None


def _predict(args):
    if _model_error(args):
        return 2
    from speechbrain_mtmm.inference.predict import run_predict

    return run_predict(
        args.model,
        args.inputs,
        text=args.text,
        transcripts=args.transcripts,
        asr_source=args.asr_source,
        device=args.device,
        fmt=args.format,
        output=args.output,
        backend=args.backend,
        trust_remote_code=args.trust_remote_code,
        weights=args.weights,
        shards=args.shards,
        shard=args.shard,
        merge=not args.no_merge,
        launcher=args.launcher,
        slurm=_slurm_options(args),
    )


def _serve(args):
    try:
        limits = ServeLimits(
            **{name: getattr(args, name) for name in SERVE_LIMITS}
        )
    except ValueError as error:
        print(f"mtmm serve: error: {error}", file=sys.stderr)
        return 2
    if _model_error(args):
        return 2
    from speechbrain_mtmm.serving.server import run_serve

    return run_serve(
        args.model,
        backend=args.backend,
        asr_source=args.asr_source,
        device=args.device,
        host=args.host,
        port=args.port,
        limits=limits,
        api_key=args.api_key,
        cors_origin=args.cors_origin,
        threads=args.threads,
        trust_remote_code=args.trust_remote_code,
    )


#: ``mtmm serve`` options that are ServeLimits fields, with their help
SERVE_LIMITS = {
    "max_upload_mb": "largest request, in MiB",
    "max_audio_seconds": "longest audio, in seconds",
    "max_text_chars": "longest transcript, in characters",
    "queue_size": "requests that may wait; more get 503 with Retry-After",
    "max_batch": "most requests predicted together (1: no micro-batching)",
    "max_wait_ms": "how long a request waits for others to join its batch",
    "timeout_s": "longest wait for the model, queue included (then 504)",
}


def _sweep_arguments(parser):
    """The options shared by ``cv`` and ``table``."""
    parser.add_argument("hparams_file", help="the recipe YAML")
    parser.add_argument(
        "--protocol",
        default="speaker",
        help="IEMOCAP: speaker (10 folds) or session (5 folds); a corpus "
        "prepared by mtmm prepare (--data_folder=<it>): its own, e.g. "
        "speaker (default: speaker)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=list(DEFAULT_SEEDS),
        help="seeds per fold (default: 1 2 3, as the paper)",
    )
    parser.add_argument(
        "--folds",
        type=int,
        nargs="+",
        default=None,
        help="folds to run (default: all, 10 speaker / 5 session)",
    )
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument(
        "--print-commands",
        action="store_true",
        help="print the commands of the incomplete runs, one per line "
        "(e.g. for a cluster job array), and run nothing",
    )
    _launcher_arguments(parser, "run", "runs")


def _launcher_arguments(parser, one, many):
    """``--launcher`` and the ``--slurm_*`` options (``cv``, ``table`` and
    ``predict --shards``); ``one``/``many``: what each job is."""
    parser.add_argument(
        "--launcher",
        choices=["local", "slurm"],
        default="local",
        help=f"local: the {many} are subprocesses here; slurm: each "
        f"{one} is a SLURM job (submitit; pip install "
        "'speechbrain-mtmm[cluster]'), see docs/cluster.md",
    )
    slurm = parser.add_argument_group("SLURM (with --launcher slurm)")
    slurm.add_argument(
        "--slurm_partition", help="partition (default: the cluster's)"
    )
    slurm.add_argument(
        f"--slurm_gpus_per_{one}",
        dest="slurm_gpus_per_run",
        type=int,
        default=0,
        help=f"GPUs per {one}"
        + ("; more than 1: a torchrun DDP job" if one == "run" else "")
        + " (default: 0)",
    )
    slurm.add_argument(
        f"--slurm_cpus_per_{one}",
        dest="slurm_cpus_per_run",
        type=int,
        help=f"CPUs per {one} (--cpus-per-task)",
    )
    slurm.add_argument(
        "--slurm_time",
        help=f"time limit per {one}, as sbatch --time (e.g. 12:00:00; "
        f"default: the partition's); a {one} that reaches it is requeued "
        "and resumes where it stopped",
    )
    slurm.add_argument(
        "--slurm_max_running",
        type=int,
        help=f"{many} running at once (default: no limit)",
    )
    slurm.add_argument(
        "--slurm_extra",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="more sbatch parameters, e.g. account=lab qos=high "
        "constraint=a100 (a name alone: a flag)",
    )


def _slurm_options(args):
    """The ``--slurm_*`` options by their name without the prefix."""
    return {k[6:]: v for k, v in vars(args).items() if k[:6] == "slurm_"}


def build_parser():
    """The ``mtmm`` argument parser, one sub-parser per verb.

    Returns
    -------
    argparse.ArgumentParser

    Example
    -------
    >>> args, _ = build_parser().parse_known_args(["export", "--run", "r",
    ...                                            "--out", "m"])
    >>> args.verb, args.run, args.overwrite
    ('export', 'r', False)
    """
    parser = argparse.ArgumentParser(
        prog="mtmm",
        description="speechbrain-mtmm: multi-task, multi-modal speech "
        "emotion recognition",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="also show third-party notices that are filtered by default "
        "(deprecations, optional figure back-ends, exporter chatter; see "
        "speechbrain_mtmm.quiet); MTMM_VERBOSE=1 does the same, also for "
        "train.py",
    )
    verbs = parser.add_subparsers(dest="verb", metavar="VERB", required=True)

    def verb(name, handler, summary, **kwargs):
        """Adds one verb's parser (its help is its summary)."""
        sub = verbs.add_parser(
            name,
            help=summary,
            description=summary,
            allow_abbrev=False,
            **kwargs,
        )
        sub.set_defaults(handler=handler)
        return sub

    sub = verb("prepare", _prepare, "a corpus' manifest and folds")
    sub.add_argument(
        "corpus",
        nargs="?",
        default="iemocap",
        choices=tuple(CATALOG),
        help="the release's layout, or csv: any corpus from a CSV manifest "
        "(default: iemocap)",
    )
    sub.add_argument("--data_folder", help="the release (iemocap, msp)")
    sub.add_argument("--save_folder", required=True, help="output folder")
    sub.add_argument("--label_map", default="4class", choices=LABEL_MAPS)
    sub.add_argument("--skip_missing", action="store_true")
    sub.add_argument("--speaker_valid", choices=SPEAKER_VALID_RULES)
    sub.add_argument(
        "--manifest",
        help="csv: columns path,text,label[,valence,arousal,dominance]"
        "[,speaker][,split][,id]",
    )
    sub.add_argument(
        "--folds",
        type=int,
        default=5,
        help="csv without a split column: speaker-independent folds",
    )
    sub.add_argument(
        "--scale",
        type=float,
        nargs=2,
        metavar=("LOW", "HIGH"),
        help="csv: the rating scale of valence, arousal, dominance",
    )
    sub.add_argument(
        "--labels", help="csv: the labels in the model's order, a,b,c"
    )
    sub.add_argument(
        "--utterance_folds",
        action="store_true",
        help="csv without speakers: utterance-level folds (not "
        "speaker-independent: scores are optimistic)",
    )
    sub.add_argument(
        "--allow_missing_text",
        action="store_true",
        help="csv: keep rows with an empty transcript",
    )

    sub = verb("folds", _folds, "the folds of a prepared manifest")
    sub.add_argument("--manifest", required=True)
    sub.add_argument("--save_folder", required=True)
    sub.add_argument("--speaker_valid", choices=SPEAKER_VALID_RULES)

    sub = verb("synth", _synth, "a synthetic corpus in a release layout")
    sub.add_argument("--out", required=True, help="output folder")
    sub.add_argument("--corpus", default="iemocap", choices=tuple(CATALOG))
    sub.add_argument("--seed", type=int, default=0)
    sub.add_argument(
        "--size",
        default="default",
        help="tiny, small, default or a number: of "
        + "; of ".join(f"{r.size_unit} ({r.name})" for r in CATALOG.values()),
    )

    sub = verb(
        "demo",
        _demo,
        "synthetic corpus + tiny models + one fold of a recipe",
    )
    sub.add_argument(
        "--corpus",
        default="iemocap",
        choices=tuple(CATALOG),
        help="the synthetic corpus' layout (msp-podcast: the MSP-Podcast "
        "recipe; csv: the IEMOCAP recipe on a prepared CSV corpus)",
    )
    sub.add_argument("--out", default="demo_output", help="work folder")
    sub.add_argument(
        "--recipe",
        default=None,
        help="the recipe folder (default: recipes/IEMOCAP/multimodal_emotion "
        "here, recipes/MSP-Podcast/multimodal_emotion for --corpus "
        "msp-podcast)",
    )
    sub.add_argument(
        "--light",
        action="store_true",
        help="use the from-scratch fbank/hashing encoders",
    )
    sub.add_argument("--size", default="default", help="tiny|small|default")
    sub.add_argument("--fold", type=int, default=1)

    sub = verb(
        "cv",
        _cv,
        "every fold x seed of a recipe, then cv_results and report.md",
        epilog=OVERRIDES_HELP,
    )
    _sweep_arguments(sub)
    sub.add_argument(
        "--output",
        help="sweep folder (default: results/cv/<experiment or yaml stem>)",
    )

    names = [name for name, _ in ROWS]
    sub = verb(
        "table",
        _table,
        "the paper's ablation table as cross-validation sweeps",
        epilog=f"Rows, in the paper's order: {' '.join(names)}. "
        + OVERRIDES_HELP
        + " They win over the presets.",
    )
    _sweep_arguments(sub)
    sub.add_argument(
        "--rows",
        nargs="+",
        choices=names,
        default=names,
        metavar="ROW",
        help="table rows to run (default: all eight, the paper's and MMER's)",
    )
    sub.add_argument(
        "--tasks",
        nargs="+",
        choices=list(TASKS),
        default=["multi"],
        help="multi (default), classes (categorical only), dims "
        "(dimensional only)",
    )
    sub.add_argument(
        "--output", help="table folder (default: results/cv/ablation)"
    )

    sub = verb(
        "export", _export, "a trained run (or a sweep) as a model folder"
    )
    what = sub.add_mutually_exclusive_group(required=True)
    what.add_argument("--run", help="recipe output folder")
    what.add_argument(
        "--sweep", help="mtmm cv output folder: every complete run"
    )
    sub.add_argument("--protocol", default="speaker", help="of --sweep")
    sub.add_argument("--out", required=True, help="model folder to write")
    sub.add_argument(
        "--onnx",
        action="store_true",
        help="also write ONNX graphs (pip install speechbrain-mtmm[onnx])",
    )
    sub.add_argument(
        "--int8",
        action="store_true",
        help="also write int8-quantized ONNX graphs (implies --onnx)",
    )
    sub.add_argument(
        "--asr_source",
        help="ASR model for missing transcripts (e.g. openai/whisper-small)",
    )
    sub.add_argument(
        "--overwrite", action="store_true", help="replace --out if not empty"
    )

    sub = verb(
        "predict",
        _predict,
        "emotion class, valence and arousal of audio files (with or "
        "without transcripts) from an exported model",
    )
    sub.add_argument(
        "--model",
        required=True,
        action="append",
        help="folder written by mtmm export, or its HF hub id; give it "
        "several times (or a sweep's export folder) for an ensemble that "
        "averages the models' probabilities and dimensions",
    )
    sub.add_argument(
        "--weights",
        nargs="+",
        type=float,
        help="one weight per --model of an ensemble (normalised; default "
        "equal)",
    )
    sub.add_argument(
        "inputs", nargs="*", help="audio files, folders or CSV manifests"
    )
    sub.add_argument("--text", help="transcript of the single input")
    sub.add_argument("--transcripts", help="CSV with path,text columns")
    sub.add_argument("--asr_source", help="ASR model for missing text")
    sub.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1")
    sub.add_argument(
        "--format",
        choices=("json", "csv", "msp-podcast"),
        default="json",
        help="msp-podcast: the challenge's categorical.csv and attributes.csv "
        "in the --output folder (Test3 submissions)",
    )
    sub.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="run the PyTorch model or its ONNX graphs (export --onnx)",
    )
    sub.add_argument("--output", help="output file (default: stdout)")
    sub.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="let the model's hyperparams.yaml run code that mtmm export "
        "does not write (only for a model you trust)",
    )
    sub.add_argument(
        "--shards",
        type=int,
        metavar="N",
        help="predict in N processes (here, or SLURM jobs with --launcher "
        "slurm), each writing its part to <output>.parts/, then merge them "
        "in input order into --output; a rerun skips finished parts and "
        "resumes the others",
    )
    sub.add_argument(
        "--shard",
        metavar="I/N",
        help="predict only shard I (from 0) of N into its part (e.g. a "
        "SLURM array task); the shard that finds every part finished "
        "merges them (under torchrun: RANK/WORLD_SIZE)",
    )
    sub.add_argument(
        "--no_merge",
        action="store_true",
        help="with --shard: write the part only (merge with --shards N)",
    )
    _launcher_arguments(sub, "shard", "shards")

    sub = verb(
        "serve",
        _serve,
        "a model behind an HTTP API (POST /v1/predict, GET /v1/model, GET "
        "/health) and a web page at / (pip install "
        '"speechbrain-mtmm[serve]")',
        epilog=TRUST_NOTE,
    )
    sub.add_argument(
        "--trust_remote_code",
        action="store_true",
        help="let the model's hyperparams.yaml run code that mtmm export "
        "does not write (only for a model you trust)",
    )
    sub.add_argument(
        "--model",
        required=True,
        help="folder written by mtmm export, or its HF hub id",
    )
    sub.add_argument(
        "--backend",
        choices=BACKENDS,
        default="torch",
        help="run the PyTorch model or its ONNX graphs (export --onnx)",
    )
    sub.add_argument("--asr_source", help="ASR model for missing text")
    sub.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1")
    sub.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default: 127.0.0.1, this machine only; "
        "0.0.0.0 gets a warning)",
    )
    sub.add_argument(
        "--port", type=int, default=8000, help="default 8000; 0: any free"
    )
    sub.add_argument(
        "--api_key",
        help="requests to /v1/* must send 'Authorization: Bearer <key>' "
        f"(default: ${API_KEY_VARIABLE} if set; none otherwise)",
    )
    sub.add_argument(
        "--cors_origin",
        nargs="+",
        metavar="ORIGIN",
        help="origins whose pages may call the API (default: none)",
    )
    sub.add_argument("--threads", type=int, help="torch threads")
    defaults = ServeLimits()
    for name, help_text in SERVE_LIMITS.items():
        default = getattr(defaults, name)
        sub.add_argument(
            f"--{name}",
            type=type(default),
            default=default,
            help=f"{help_text} (default: {default:g})",
        )
    return parser


def main(argv=None):
    """Runs one verb.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        The verb's exit code: 0 success, 1 failure, 2 usage error.
    """
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        args.overrides = {}
        if args.verb in TAKES_OVERRIDES:
            try:
                args.overrides = parse_overrides(extra)
            except ValueError as error:
                parser.error(str(error))
        elif extra:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as stop:  # --help (0) or a usage error (2)
        return stop.code
    quiet_third_party(verbose=args.verbose or None)
    try:
        return args.handler(args)
    # bad input, in one line: the package's errors are ValueErrors (the
    # corpora's preparation errors, ExportError, OnnxBackendError, ...) or
    # OSErrors (RecipeNotFoundError), but for a busy folder's
    except (FolderBusyError, ValueError, OSError) as error:
        if isinstance(error, OSError):  # a full disk, a read-only folder
            from speechbrain_mtmm.atomic import write_error

            error = write_error(_written(args, error), error) or error
        print(
            f"mtmm {args.verb}: {type(error).__name__}: {error}",
            file=sys.stderr,
        )
        return 1


def _written(args, error):
    """What a verb failed to write: the system's file name, or else the
    verb's output (the system names none when a write fails)."""
    if error.filename:
        return error.filename
    for name in ("save_folder", "out", "output"):
        if getattr(args, name, None):
            return getattr(args, name)
    return f"the output of mtmm {args.verb}"


if __name__ == "__main__":
    sys.exit(main())
