"""What ``mtmm cv`` and ``mtmm table`` know before importing a sweep:
seeds, recipe overrides, the table's rows and tasks, the recipe's folder.

``mtmm --help`` and the verbs' usage errors read this module, which
imports nothing heavy; :mod:`.sweep` and :mod:`.ablation` use it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from pathlib import Path

#: The seeds of each fold, as the paper
DEFAULT_SEEDS = (1, 2, 3)
# Recipe keys the runner sets itself for every run
RESERVED_KEYS = ("protocol", "fold", "seed", "output_folder")
OVERRIDES_HELP = (
    "Any other --key=value is a recipe override passed to every run (e.g. "
    "--data_folder=..., --number_of_epochs=5, --device=cpu)."
)
# (preset name, the paper's row), in the paper's order
ROWS = (
    ("roberta_no_fusion", "HuBERT + RoBERTa-large, no refinement/fusion"),
    ("deberta_no_fusion", "HuBERT + DeBERTaV3, no refinement/fusion"),
    ("self_attention", "+ self-attention refinement"),
    ("cross_attention", "+ ordinary cross-attention"),
    ("bridge_tokens", "+ bridge tokens (crossed keys/values)"),
    ("masking", "+ Random Modality Masking"),
    ("mmer", "MMER: wav2vec2-base + RoBERTa-base, gated fusion, its losses"),
    ("bridge_tokens_mmer_losses", "+ Random Modality Masking + MMER's losses"),
)
#: Task variant -> (its name in the table, its metrics)
TASKS = {
    "multi": ("multi-task", ("UA", "WA", "CCC_valence", "CCC_arousal")),
    "classes": ("categorical only", ("UA", "WA")),
    "dims": ("dimensional only", ("CCC_valence", "CCC_arousal")),
}


def recipe_folder(hparams_file):
    """The folder a recipe runs in: the parent of the YAML's ``hparams/``.

    Arguments
    ---------
    hparams_file : str or os.PathLike
        The recipe YAML, e.g.
        ``recipes/IEMOCAP/multimodal_emotion/hparams/iemocap.yaml``.

    Returns
    -------
    pathlib.Path
        The absolute recipe folder (holding ``train.py``).

    Example
    -------
    >>> recipe = getfixture("tmp_path") / "recipe"
    >>> (recipe / "hparams").mkdir(parents=True)
    >>> _ = (recipe / "train.py").write_text("")
    >>> _ = (recipe / "hparams" / "x.yaml").write_text("experiment: paper")
    >>> recipe_folder(recipe / "hparams" / "x.yaml") == recipe
    True
    """
    path = Path(hparams_file).resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no recipe YAML at {path}")
    folder = path.parent.parent
    if not (folder / "train.py").is_file():
        raise FileNotFoundError(
            f"{folder / 'train.py'} not found: the YAML must sit in the "
            "hparams/ folder of a recipe"
        )
    return folder


def parse_overrides(args):
    """Recipe overrides from the command line, in ``--key=value`` form.

    ``--key value`` is accepted too. The keys the runner sets itself
    (protocol, fold, seed, output_folder) are refused, and so is a key
    given twice.

    Arguments
    ---------
    args : list of str
        The arguments the runner did not recognise.

    Returns
    -------
    dict
        Key -> value, both strings (values are YAML text), in order.

    Example
    -------
    >>> parse_overrides(["--lr=0.1", "--device", "cpu", "--labels=[a, b]"])
    {'lr': '0.1', 'device': 'cpu', 'labels': '[a, b]'}
    """
    overrides = {}
    args = list(args)
    while args:
        arg = args.pop(0)
        if not arg.startswith("--") or len(arg) < 3:
            raise ValueError(
                f"unexpected argument {arg!r}: recipe overrides are --key=value"
            )
        key, sep, value = arg[2:].partition("=")
        if not sep:
            if not args or args[0].startswith("--"):
                raise ValueError(f"override --{key} has no value")
            value = args.pop(0)
        if key in overrides:  # as train.py refuses it (override_values)
            raise ValueError(
                f"--{key} is given twice (--{key}={overrides[key]}, "
                f"--{key}={value}): give it once"
            )
        if key in RESERVED_KEYS:
            raise ValueError(
                f"--{key} is set by the runner for each run: use --protocol, "
                "--folds, --seeds and --output instead"
            )
        overrides[key] = value
    return overrides
