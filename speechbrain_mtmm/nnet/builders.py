"""The blocks a model configuration names, in one registry.

A model configuration picks each of its three exchangeable blocks by name:
``fusion_type`` (how the two modalities meet), ``refinement_type`` (the
sequence module each modality passes through first, when ``refinement``
is on) and ``heads_type`` (the outputs). A name is one of the built-ins
registered below, or the import path of a class of yours
(``my_package.fusion.MyFusion``, importable where the recipe runs): it is
built with the keyword arguments the built-ins get, those its
``__init__`` accepts, and must keep the interface of its kind:

* **fusion** (:data:`FUSIONS`): ``__init__(d_model, nhead, num_tokens,
  num_layers, d_ffn, dropout)`` (any of them); an ``output_size``
  attribute; ``forward(audio, audio_lens, text, text_lens)`` takes
  ``(batch, frames, d_model)`` features of each modality and their
  relative lengths in [0, 1], and returns the utterance vector ``(batch,
  output_size)``; padded frames must not change it.
* **refinement** (:data:`REFINEMENTS`): ``__init__(d_model, nhead,
  num_layers, d_ffn, dropout)``; ``forward(feats, lens)`` returns features
  of the same shape.
* **heads** (:data:`HEADS`): ``__init__(input_size, n_classes, n_dims,
  dropout)``; ``forward(embedding)`` returns ``(logits, dims)``, ``(batch,
  n_classes)`` and ``(batch, n_dims)`` in [0, 1].

So ``--fusion_type=my_package.MyFusion`` tries a new fusion without
editing this package. An exported model names the same block; loading a
model whose blocks are not built-ins runs their code, which the inference
side allows only when asked to (``trust_remote_code``).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import functools
import importlib
import inspect

from speechbrain_mtmm.nnet.fusion import (
    BridgeTokenFusion,
    CrossAttentionFusion,
    PooledFusion,
)
from speechbrain_mtmm.nnet.heads import EmotionHeads
from speechbrain_mtmm.nnet.mmer import MMERFusion
from speechbrain_mtmm.nnet.refinement import SelfAttentionRefinement

#: Fusion of the two modalities: the paper's bridge tokens (crossed or
#: paired key/value sources), its ablation rows (cross-attention without
#: tokens, no fusion: pooled mean or concatenation) and MMER's gated fusion
FUSIONS = {
    "bridge_crossed": functools.partial(BridgeTokenFusion, mode="crossed"),
    "bridge_paired": functools.partial(BridgeTokenFusion, mode="paired"),
    "cross_attention": CrossAttentionFusion,
    "pooled_mean": functools.partial(PooledFusion, mode="mean"),
    "pooled_concat": functools.partial(PooledFusion, mode="concat"),
    "mmer": MMERFusion,
}
#: Per-modality refinement (the paper's self-attention)
REFINEMENTS = {"self_attention": SelfAttentionRefinement}
#: Output heads (a classifier and a sigmoid regressor)
HEADS = {"emotion_heads": EmotionHeads}
#: Kind of block -> its registry
REGISTRIES = {"fusion": FUSIONS, "refinement": REFINEMENTS, "heads": HEADS}


class BlockError(ValueError):
    """A block name that is neither registered nor an importable class."""


def is_builtin(kind, name):
    """Whether ``name`` is a registered block of ``kind`` (not user code).

    Arguments
    ---------
    kind : str
        ``"fusion"``, ``"refinement"`` or ``"heads"``.
    name : str
        The configured name.

    Returns
    -------
    bool

    Example
    -------
    >>> is_builtin("fusion", "mmer"), is_builtin("fusion", "my.Fusion")
    (True, False)
    """
    return name in REGISTRIES[kind]


def block_class(kind, name):
    """The class (or partial) a block name stands for.

    Arguments
    ---------
    kind : str
        ``"fusion"``, ``"refinement"`` or ``"heads"``.
    name : str
        A registered name, or ``package.module.Class``.

    Returns
    -------
    callable

    Raises
    ------
    BlockError
        Naming the block, the registered names and what went wrong.

    Example
    -------
    >>> block_class("heads", "emotion_heads").__name__
    'EmotionHeads'
    >>> block_class("fusion", "torch.nn.Identity").__name__
    'Identity'
    >>> block_class("fusion", "bridge")
    Traceback (most recent call last):
    ...
    speechbrain_mtmm.nnet.builders.BlockError: fusion_type 'bridge' is not \
one of bridge_crossed, bridge_paired, cross_attention, pooled_mean, \
pooled_concat, mmer, nor an import path (package.module.Class)
    """
    registry = REGISTRIES[kind]
    if name in registry:
        return registry[name]
    known = ", ".join(registry)
    if not isinstance(name, str) or "." not in name:
        raise BlockError(
            f"{kind}_type {name!r} is not one of {known}, nor an import "
            "path (package.module.Class)"
        )
    module, _, attribute = name.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError) as error:
        raise BlockError(
            f"{kind}_type {name!r}: cannot import it ({error}); install the "
            f"package that defines it, or use one of {known}"
        ) from None
    if not callable(found):
        raise BlockError(f"{kind}_type {name!r} is not a class")
    return found


def build_block(kind, name, **arguments):
    """Builds a block from its name and the model's sizes.

    Only the arguments the block's ``__init__`` accepts are passed (all of
    them if it takes ``**kwargs``), so a block of yours declares just what
    it needs.

    Arguments
    ---------
    kind : str
        ``"fusion"``, ``"refinement"`` or ``"heads"``.
    name : str
        A registered name or an import path (:func:`block_class`).
    **arguments
        The sizes of the interface of ``kind`` (module docstring).

    Returns
    -------
    torch.nn.Module

    Example
    -------
    >>> fusion = build_block("fusion", "pooled_concat", d_model=8, nhead=2,
    ...                      num_tokens=4, num_layers=1, d_ffn=0, dropout=0.1)
    >>> fusion.output_size
    16
    >>> build_block("fusion", "cross_attention", d_model=8, nhead=2,
    ...             num_layers=1).output_size
    8
    """
    factory = block_class(kind, name)
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):  # no signature: pass everything
        parameters = ()
    if parameters and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        names = {p.name for p in parameters}
        arguments = {k: v for k, v in arguments.items() if k in names}
    try:
        return factory(**arguments)
    except TypeError as error:
        raise BlockError(f"{kind}_type {name!r}: {error}") from None
