"""Test helpers, apart from the library: tiny random HuggingFace models
built offline, recipe commands on the synthetic corpus, the demo."""
