"""Reading a HyperPyYAML file without building (or running) anything.

A recipe's YAML and an export's ``hyperparams.yaml`` are HyperPyYAML:
loading them builds the objects their tags name (``!new:``, ``!apply:``,
...), which runs code. The settings of a run, the model configuration of
an export and the checks of a command line only need the plain values:
:func:`read_plain_yaml` gives those, references and overrides resolved,
and leaves out every entry holding a tag.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import ruamel.yaml
import ruamel.yaml.constructor
from hyperpyyaml import resolve_references

TAGGED = object()  # what a tagged node (!new:, !name:, !ref, ...) reads as


class _PlainConstructor(ruamel.yaml.constructor.SafeConstructor):
    """The safe constructor, reading every tagged node as :data:`TAGGED`."""


_PlainConstructor.add_multi_constructor("!", lambda *_: TAGGED)


def is_plain(value):
    """Whether a value read by :func:`read_plain_yaml` holds no tag.

    Arguments
    ---------
    value : object

    Returns
    -------
    bool

    Example
    -------
    >>> is_plain({"a": [1, 2]}), is_plain({"a": [1, TAGGED]})
    (True, False)
    """
    if isinstance(value, dict):
        return all(is_plain(v) for v in value.values())
    if isinstance(value, list):
        return all(is_plain(v) for v in value)
    return value is not TAGGED


def read_plain_yaml(path, overrides=None, resolve=True, keep_tagged=False):
    """A YAML file's top-level entries as plain values, nothing built.

    Arguments
    ---------
    path : str or path-like
        The file.
    overrides : str or dict, optional
        Overrides, as SpeechBrain's ``parse_arguments`` gives them.
    resolve : bool
        Resolve ``!ref`` and ``!include`` first (as HyperPyYAML would; a
        ``!PLACEHOLDER`` left then raises). False: read the file as written
        (references count as tags).
    keep_tagged : bool
        Keep the entries holding a tag, with :data:`TAGGED` where it is
        (False: leave them out).

    Returns
    -------
    dict
        Key -> value (plain dicts, lists, strings, numbers, booleans).

    Example
    -------
    >>> path = getfixture("tmp_path") / "x.yaml"
    >>> _ = path.write_text(
    ...     "lr: 0.1\\nout: !ref <lr>\\nflag: True\\nsys: !new:os.getcwd\\n")
    >>> read_plain_yaml(path, {"lr": 0.2})
    {'lr': 0.2, 'out': 0.2, 'flag': True}
    >>> read_plain_yaml(path, resolve=False)
    {'lr': 0.1, 'flag': True}
    """
    with open(path, encoding="utf-8") as fin:
        if resolve:
            text = resolve_references(fin, overrides or {}).getvalue()
        else:
            text = fin.read()
    reader = ruamel.yaml.YAML(typ="safe", pure=True)
    reader.Constructor = _PlainConstructor
    values = reader.load(text)
    if not isinstance(values, dict):
        return {}
    return {
        str(key): value
        for key, value in values.items()
        if keep_tagged or is_plain(value)
    }
