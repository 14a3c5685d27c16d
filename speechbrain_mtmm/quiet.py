"""Third-party messages that are not the user's concern, filtered at their
source, narrowly: each by its logger or warning module and its message.

A user who sees the same harmless lines on every command learns to ignore
warnings, and then misses the real ones. The lines kept out here say
nothing about the user's run or model:

* transformers' ``FutureWarning`` that ``gradient_checkpointing_disable``
  is deprecated (SpeechBrain's HF wrapper calls it on every encoder);
* SpeechBrain's "torchvision is not available - cannot save figures"
  (an optional figure back-end of a logger the recipes do not use);
* the ONNX exporter's optimizer chatter ("Skipping constant folding ...",
  "Attribute type is ambiguous ...");
* onnxruntime's quantizer advice, logged on the root logger ("Please
  consider to run pre-processing before quantization", and "Inference
  failed or unsupported type to quantize for tensor ..." with a protobuf
  dump, for the integer tensors that int8 quantization leaves as they
  are).

Every other warning stays, ours and any that change results (a NaN loss,
a missing transcript, a checkpoint of other settings). ``mtmm --verbose``
or ``MTMM_VERBOSE=1`` (also for ``train.py``) keeps these too. Python's
``warnings`` and ``logging`` filters are used as they are; nothing here is
our own machinery beyond the list.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

import logging
import os
import warnings

#: The environment variable that keeps third-party chatter
VERBOSE_ENV = "MTMM_VERBOSE"

#: (warning category, module regex, message regex) filtered out
WARNINGS = (
    (
        FutureWarning,
        r"transformers\.modeling_utils",
        r"`gradient_checkpointing_disable` is deprecated",
    ),
)

#: logger name ("" for the root logger) -> message prefixes filtered out
LOG_LINES = {
    "speechbrain.utils.train_logger": (
        "torchvision is not available - cannot save figures",
    ),
    "onnxscript.optimizer._constant_folding": ("Skipping constant folding",),
    "onnx_ir._convenience": ("Attribute type is ambiguous",),
    "": (  # the root logger, which onnxruntime.quantization logs on
        "Please consider to run pre-processing before quantization",
        "Inference failed or unsupported type to quantize for tensor",
    ),
}


class _Drop(logging.Filter):
    """Drops a logger's records whose message starts with a prefix."""

    def __init__(self, prefixes):
        super().__init__()
        self.prefixes = tuple(prefixes)

    def filter(self, record):
        """False (dropped) for a record of one of the prefixes."""
        return not str(record.msg).startswith(self.prefixes)


def quiet_third_party(verbose=None):
    """Installs the filters of :data:`WARNINGS` and :data:`LOG_LINES`
    (once per process; a second call changes nothing).

    Arguments
    ---------
    verbose : bool, optional
        Keep everything (default: whether ``MTMM_VERBOSE`` is set to a
        value other than ``0`` or empty).

    Returns
    -------
    bool
        Whether the filters are installed.

    Example
    -------
    >>> import logging
    >>> quiet_third_party(verbose=False)
    True
    >>> logger = logging.getLogger("speechbrain.utils.train_logger")
    >>> any(isinstance(f, _Drop) for f in logger.filters)
    True
    """
    if verbose is None:
        verbose = os.environ.get(VERBOSE_ENV, "") not in ("", "0")
    if verbose:
        return False
    for category, module, message in WARNINGS:
        warnings.filterwarnings(
            "ignore", message=message, category=category, module=module
        )
    for name, prefixes in LOG_LINES.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Drop) for f in logger.filters):
            logger.addFilter(_Drop(prefixes))
    return True
