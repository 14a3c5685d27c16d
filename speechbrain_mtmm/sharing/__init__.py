"""Sharing trained models: export folders, model cards, ONNX graphs, and
the ``custom_interface.py`` that loads an export without this package.

On top of ``experiments`` (a sweep's cross-validation table goes into its
card) and ``inference`` (an export is loaded once as a check, and the ONNX
graphs are compared with the PyTorch model).

Authors
-------
 * speechbrain-mtmm contributors, 2026
"""
