"""``mtmm serve``: a model behind an HTTP API and a web page.

* :mod:`~speechbrain_mtmm.serving.batching`: limits, in-memory audio
  decoding and the micro-batching queue (no web framework);
* :mod:`~speechbrain_mtmm.serving.model_info`: what ``GET /v1/model``
  says of the model;
* :mod:`~speechbrain_mtmm.serving.app`: the FastAPI app (the ``serve``
  extra);
* :mod:`~speechbrain_mtmm.serving.server`: ``mtmm serve``, uvicorn.

Nothing is imported here: the package imports without the ``serve``
extra.
"""
