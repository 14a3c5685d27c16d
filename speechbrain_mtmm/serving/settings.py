"""What ``mtmm serve`` knows before importing the server: the request
limits and batching (:class:`ServeLimits`, the defaults of its options),
the API key's environment variable and the note on trusting a model.

``mtmm --help`` reads this module, which imports nothing heavy;
:mod:`.batching`, :mod:`.app` and :mod:`.server` use it.

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""

from dataclasses import dataclass

#: Repeated in ``mtmm serve --help``
TRUST_NOTE = (
    "Serve only model folders you trust: with the torch backend, loading "
    "a model runs its hyperparams.yaml (HyperPyYAML, which can run code; "
    "tags other than an export's are refused unless --trust_remote_code "
    "is given); the onnx backends read it as plain YAML and run nothing "
    "in it."
)
API_KEY_VARIABLE = "MTMM_API_KEY"


@dataclass
class ServeLimits:
    """What one request may hold, and how requests are batched.

    Arguments
    ---------
    max_upload_mb : float
        Largest request body, in MiB (413 above it).
    max_audio_seconds : float
        Longest audio (413 above it); longer than the model's training
        crop is split into windows, as ``mtmm predict`` does.
    max_text_chars : int
        Longest transcript, in characters (413 above it).
    queue_size : int
        Requests that may wait for the model (503 above it).
    max_batch : int
        Most requests predicted in one batch (1: no micro-batching).
    max_wait_ms : float
        How long the first request of a batch waits for others.
    timeout_s : float
        Longest wait for the model, queue included (504 after it).

    Example
    -------
    >>> limits = ServeLimits(max_upload_mb=1)
    >>> limits.max_upload_bytes
    1048576
    """

    max_upload_mb: float = 20.0
    max_audio_seconds: float = 120.0
    max_text_chars: int = 5000
    queue_size: int = 32
    max_batch: int = 8
    max_wait_ms: float = 10.0
    timeout_s: float = 60.0

    def __post_init__(self):
        for name in ("max_upload_mb", "max_audio_seconds", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name} must be positive")
        for name in ("max_text_chars", "queue_size", "max_batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"--{name} must be at least 1")
        if self.max_wait_ms < 0:
            raise ValueError("--max_wait_ms must not be negative")

    @property
    def max_upload_bytes(self):
        """The largest request body, in bytes."""
        return int(self.max_upload_mb * 2**20)
