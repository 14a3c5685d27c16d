"""A recipe's hyperparameters: loaded with the command line's overrides,
checked first.

:func:`corpus_overrides` adds what a prepared ``data_folder`` implies (its
labels, rating scale and protocol); :func:`load_recipe_hparams` loads the
YAML with SpeechBrain's overrides and turns an unknown key (with the keys
renamed in 0.2), a value of the wrong kind or one an object refuses into one
line naming the key; :func:`override_values` refuses an override given
twice; :func:`check_checkpoint_interval` refuses two kinds of intra-epoch
checkpoints at once; :func:`format_override` writes a value back as a
``--key=value`` override.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import difflib
import json
import re

import ruamel.yaml
import yaml
from hyperpyyaml import load_hyperpyyaml
from speechbrain.utils.logger import get_logger

from speechbrain_mtmm.data.corpus import (
    read_corpus_info,
)
from speechbrain_mtmm.encoders import EncoderError
from speechbrain_mtmm.plain_yaml import read_plain_yaml, yaml_syntax_error
from speechbrain_mtmm.system import ModelConfigError

logger = get_logger(__name__)


#: Recipe keys renamed in speechbrain-mtmm 0.2 (old name -> new name)
RENAMED_KEYS = {
    "audio_cache_layers": "audio_layers",
    "text_cache_layers": "text_layers",
}


class HparamsError(ValueError):
    """An override the recipe YAML does not have; the message names it."""


#: Counts and sizes of a recipe that must be positive
POSITIVE_KEYS = (
    "number_of_epochs",
    "batch_size",
    "grad_accumulation_factor",
    "max_audio_seconds",
    "max_batch_length",
    "num_buckets",
    "sample_rate",
    "text_max_length",
    "encoder_light_size",
    "feature_cache_batch_size",
    "d_model",
    "n_heads",
    "refinement_layers",
    "refinement_ffn",
    "bridge_tokens",
    "fusion_layers",
    "lr",
)


def override_values(overrides):
    """The overrides as a mapping; a key given twice is refused.

    ``--lr=1 --lr=2`` is refused rather than read as argparse would (the
    last one wins): a command line assembled from several places (a
    script, a sweep, a pasted option) that sets a key twice says two
    things, and the run would record only one of them without a word.

    Arguments
    ---------
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them (YAML text, one
        ``key: value`` line per ``--key=value``).

    Returns
    -------
    dict
        Key -> value.

    Raises
    ------
    HparamsError
        Naming a key given twice and its values, or an override that is
        not valid YAML.

    Example
    -------
    >>> override_values("lr: 0.1\\nseed: 2")
    {'lr': 0.1, 'seed': 2}
    >>> override_values("lr: 1\\nseed: 2\\nlr: 2")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.hparams.HparamsError: --lr is given twice \
(--lr=1, --lr=2): give it once
    """
    if not isinstance(overrides, str):
        return dict(overrides or {})
    reader = ruamel.yaml.YAML(typ="safe", pure=True)
    lines = overrides.splitlines()
    try:
        root = reader.compose(overrides)
    except ruamel.yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = lines[mark.line] if mark and mark.line < len(lines) else ""
        key, _, value = line.partition(":")
        problem = str(yaml_syntax_error("overrides", error)).split(": ", 1)
        raise HparamsError(
            f"--{key.strip()}={value.strip()} is not a valid value "
            f"({problem[-1]})"
        ) from None
    if root is None:
        return {}
    given = {}
    for key, value in getattr(root, "value", ()):
        text = value.value if isinstance(value.value, str) else "..."
        given.setdefault(str(key.value), []).append(text)
    for key, values in given.items():
        if len(values) > 1:
            shown = ", ".join(f"--{key}={value}" for value in values)
            raise HparamsError(
                f"--{key} is given {_times(len(values))} ({shown}): give it "
                "once"
            )
    return ruamel.yaml.YAML().load(overrides) or {}


def _times(count):
    """``twice``, ``3 times``, ..."""
    return "twice" if count == 2 else f"{count} times"


def check_checkpoint_interval(hparams_file, hparams, run_opts):
    """Refuses intra-epoch checkpoints asked for both by time and by steps.

    SpeechBrain takes either ``ckpt_interval_minutes`` or
    ``ckpt_interval_steps`` (the command line's value, else the YAML's)
    and stops when both are above 0, after the run folder was made. This
    says which to drop before anything is made.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    hparams : dict
        Its loaded hyperparameters.
    run_opts : speechbrain.utils.run_opts.RunOptions or dict
        SpeechBrain's run options (``overridden_args``: those on the
        command line).

    Raises
    ------
    HparamsError
        Naming both settings and where each comes from.

    Example
    -------
    >>> opts = {"ckpt_interval_steps": 50,
    ...         "overridden_args": {"ckpt_interval_steps"}}
    >>> check_checkpoint_interval("x.yaml", {"ckpt_interval_minutes": 0},
    ...                           opts)
    >>> check_checkpoint_interval("x.yaml", {"ckpt_interval_minutes": 15},
    ...                           opts)
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.hparams.HparamsError: --ckpt_interval_steps=50 \
and ckpt_interval_minutes: 15 (x.yaml) both ask for intra-epoch checkpoints; \
keep one: give --ckpt_interval_minutes=0 to save every 50 steps, or \
--ckpt_interval_steps=0 to save every 15 minutes
    """
    if not isinstance(run_opts, dict):
        run_opts = {
            **run_opts.as_dict(),
            "overridden_args": run_opts.overridden_args,
        }
    given = run_opts.get("overridden_args") or set()
    values, origin = {}, {}
    for key in ("ckpt_interval_minutes", "ckpt_interval_steps"):
        if key in given:
            values[key] = run_opts.get(key) or 0
            origin[key] = f"--{key}={values[key]}"
        else:
            values[key] = hparams.get(key, run_opts.get(key)) or 0
            origin[key] = f"{key}: {values[key]} ({hparams_file})"
    minutes = values["ckpt_interval_minutes"]
    steps = values["ckpt_interval_steps"]
    if minutes > 0 and steps > 0:
        raise HparamsError(
            f"{origin['ckpt_interval_steps']} and "
            f"{origin['ckpt_interval_minutes']} both ask for intra-epoch "
            "checkpoints; keep one: give --ckpt_interval_minutes=0 to save "
            f"every {steps} steps, or --ckpt_interval_steps=0 to save every "
            f"{minutes} minutes"
        )


def check_values(hparams_file, defaults, overrides):
    """Refuses a value of the wrong kind, or a count or size below 1.

    A key whose recipe value is a plain boolean, integer or number keeps
    that kind (an integer where a number is expected is fine); the keys of
    :data:`POSITIVE_KEYS` must be positive. Checked before anything is
    built, so that ``--lr=abc`` or ``--batch_size=0`` is one line naming
    the key rather than a traceback from where the value is first used.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML (for the message).
    defaults : dict
        Its top-level keys as written (:func:`read_plain_yaml` with
        ``keep_tagged``).
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them.

    Raises
    ------
    HparamsError
        Naming the key, the value and what was expected.

    Example
    -------
    >>> defaults = {"lr": 0.1, "batch_size": 8, "refinement": True}
    >>> check_values("x.yaml", defaults, "lr: 1\\nrefinement: False")
    >>> check_values("x.yaml", defaults, "lr: abc")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.hparams.HparamsError: x.yaml: lr must be a \
number (like 0.1), not 'abc'
    >>> check_values("x.yaml", defaults, {"batch_size": 0})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.hparams.HparamsError: x.yaml: batch_size must \
be positive, not 0
    """
    overrides = override_values(overrides)
    values = {**defaults, **overrides}
    for key, value in overrides.items():
        default = defaults.get(key)
        if isinstance(default, bool):
            kind, ok = "True or False", isinstance(value, bool)
        elif isinstance(default, int):
            kind = "an integer"
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            kind = "a number"
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            continue
        if not ok:
            raise HparamsError(
                f"{hparams_file}: {key} must be {kind} (like {default}), "
                f"not {value!r}"
            )
    for key in POSITIVE_KEYS:
        value = values.get(key)
        if isinstance(value, (int, float)) and not value > 0:
            raise HparamsError(
                f"{hparams_file}: {key} must be positive, not {value}"
            )


def corpus_overrides(hparams_file, overrides=""):
    """The overrides, with what a prepared ``data_folder`` implies.

    When ``data_folder`` is a folder written by ``mtmm prepare csv`` or
    ``mtmm prepare msp-podcast`` (it holds ``corpus.json``), the recipe
    trains on it as it is: ``prepare_folder`` is that folder, and
    ``labels``, ``rating_scale`` and the default ``protocol`` are the
    corpus' own. Keys given on the command line win; keys the YAML does
    not have are left alone.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them.

    Returns
    -------
    str or dict
        The overrides, of the same kind, with the implied keys added.

    Example
    -------
    >>> from speechbrain_mtmm.data.corpus import write_corpus_info
    >>> tmp = getfixture("tmp_path")
    >>> _ = write_corpus_info(tmp, corpus="csv", manifest="m.json",
    ...     labels=["a", "b"], dimensions=[], rating_scale=[1.0, 7.0],
    ...     protocols={"split": 1}, source="c.csv")
    >>> path = tmp / "x.yaml"
    >>> _ = path.write_text("data_folder: !PLACEHOLDER\\nlabels: [x]\\n"
    ...                     "protocol: speaker\\nprepare_folder: p\\n")
    >>> extra = corpus_overrides(path, {"data_folder": str(tmp)})
    >>> extra["labels"], extra["protocol"], extra["prepare_folder"] == str(tmp)
    (['a', 'b'], 'split', True)
    """
    defaults = read_plain_yaml(hparams_file, resolve=False, keep_tagged=True)
    given = override_values(overrides)
    data_folder = given.get("data_folder", defaults.get("data_folder"))
    if not isinstance(data_folder, str):
        return overrides
    info = read_corpus_info(data_folder)
    if info is None:
        return overrides
    implied = {
        "prepare_folder": str(data_folder),
        "labels": list(info["labels"]),
        "rating_scale": info["rating_scale"],
        "protocol": next(iter(info["protocols"])),
    }
    added = {
        key: value
        for key, value in implied.items()
        if key in defaults and key not in given and value is not None
    }
    logger.info(
        "%s is a prepared %s corpus: %s",
        data_folder,
        info["corpus"],
        ", ".join(f"{k}={v}" for k, v in added.items()),
    )
    if isinstance(overrides, str):
        lines = [
            f"{key}: {json.dumps(value, ensure_ascii=False)}"
            for key, value in added.items()
        ]
        return "\n".join([overrides.rstrip(), *lines]).lstrip()
    return {**overrides, **added}


def run_option_overrides(hparams_file, run_opts, overrides=""):
    """The overrides, with every SpeechBrain run option given on the
    command line that is also a key of the recipe YAML.

    SpeechBrain's ``parse_arguments`` takes its run options
    (``--grad_accumulation_factor``, ``--max_grad_norm``,
    ``--ckpt_interval_minutes``, ``--precision``, ...) out of the command
    line, and its ``Brain`` applies them over the YAML's keys of the same
    names, while the YAML's values would stay in ``hparams``, in the
    saved ``hyperparams.yaml`` and in ``run_config.json``: the recipe
    would count steps with one value while the Brain uses another, and a
    resume with another value would not be seen as other settings. Given
    back as overrides too, the value the Brain applies is the one the
    recipe reads, records and compares.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    run_opts : speechbrain.utils.run_opts.RunOptions or dict
        As ``parse_arguments`` returns them (``overridden_args`` names
        those given on the command line).
    overrides : str or dict
        As ``parse_arguments`` returns them.

    Returns
    -------
    str or dict
        The overrides, of the same kind, with those run options added.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text("grad_accumulation_factor: 1\\nlr: 0.1\\n")
    >>> opts = {"grad_accumulation_factor": 4, "precision": "bf16",
    ...         "overridden_args": {"grad_accumulation_factor", "precision"}}
    >>> run_option_overrides(path, opts, "lr: 0.2")
    'lr: 0.2\\ngrad_accumulation_factor: 4'
    """
    if not isinstance(run_opts, dict):
        run_opts = {
            **run_opts.as_dict(),
            "overridden_args": run_opts.overridden_args,
        }
    keys = read_plain_yaml(hparams_file, resolve=False, keep_tagged=True)
    given = sorted(set(run_opts.get("overridden_args", ())) & set(keys))
    applied = {key: run_opts[key] for key in given}
    if not applied:
        return overrides
    if isinstance(overrides, str):
        lines = [
            f"{key}: {json.dumps(value, ensure_ascii=False)}"
            for key, value in applied.items()
        ]
        return "\n".join([overrides.rstrip(), *lines]).lstrip()
    return {**overrides, **applied}


def load_recipe_hparams(hparams_file, overrides=""):
    """Loads a recipe YAML with command-line overrides.

    Arguments
    ---------
    hparams_file : str or path-like
        The recipe YAML.
    overrides : str or dict
        As SpeechBrain's ``parse_arguments`` returns them.

    Returns
    -------
    dict
        The built hyperparameters.

    Raises
    ------
    HparamsError
        For an override of a key the YAML does not have, with the new name
        of a renamed key or the closest existing keys; for a value of the
        wrong kind (:func:`check_values`) or one an object of the YAML
        refuses.

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text("fusion_type: bridge_crossed")
    >>> load_recipe_hparams(path, {"fusion_type": "pooled_mean"})
    {'fusion_type': 'pooled_mean'}
    >>> load_recipe_hparams(path, {"fusion_typ": "pooled_mean"})
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.training.hparams.HparamsError: ...x.yaml: no key \
fusion_typ to override (did you mean fusion_type?)
    """
    defaults = read_plain_yaml(hparams_file, resolve=False, keep_tagged=True)
    check_values(hparams_file, defaults, overrides)
    with open(hparams_file, encoding="utf-8") as fin:
        try:
            return load_hyperpyyaml(fin, overrides)
        except KeyError as error:
            found = re.match(
                r"Override '([^']+)' not found", str(error.args[0])
            )
            if not found:
                raise
            key = found[1]
        except ModelConfigError as error:
            # a value of the YAML the model refuses (a fusion_type, ...)
            raise HparamsError(f"{hparams_file}: {error}") from None
        except EncoderError:
            raise  # names the encoder's source already
        except ruamel.yaml.YAMLError as error:
            # in a file it includes (the file itself was read before)
            raise yaml_syntax_error(hparams_file, error) from None
        except (ValueError, TypeError) as error:
            # an object of the YAML refused its arguments (they name the key)
            raise HparamsError(f"{hparams_file}: {error}") from None
    keys = list(defaults)
    if key in RENAMED_KEYS:
        hint = f" (renamed {RENAMED_KEYS[key]} in speechbrain-mtmm 0.2)"
    else:
        close = difflib.get_close_matches(key, keys, n=3)
        hint = f" (did you mean {' or '.join(close)}?)" if close else ""
    raise HparamsError(f"{hparams_file}: no key {key} to override{hint}")


def format_override(value):
    """A Python/YAML value as the text of a ``--key=value`` override.

    Arguments
    ---------
    value : object
        A value loaded from YAML (or already a string).

    Returns
    -------
    str

    Example
    -------
    >>> format_override(False), format_override(["UA"]), format_override(0)
    ('False', '[UA]', '0')
    """
    if value is None:
        return "null"
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value)
