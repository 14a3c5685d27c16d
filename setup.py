"""Installation script for speechbrain-mtmm.

Dependency ranges live here; the exact known-good pins live in
``constraints.txt`` (used by the Makefile, CI and the README)::

    pip install -e ".[dev]" -c constraints.txt
    pip install -e ".[docs]" -c constraints.txt   # make docs
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="speechbrain-mtmm",
    version="0.2.1",
    description=(
        "Multi-task, multi-modal speech emotion recognition (classes + "
        "valence/arousal from audio + transcript) on top of SpeechBrain"
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["speechbrain_mtmm", "speechbrain_mtmm.*"]),
    # presets ship inside the package (read with importlib.resources)
    # and so does mtmm serve's page
    package_data={
        "speechbrain_mtmm": [
            "presets/*.yaml",
            "presets/**/*.yaml",
            "serving/static/*",
        ]
    },
    install_requires=[
        "speechbrain>=1.1,<1.2",
        # 2.6: torch.load defaults to weights_only=True, also inside
        # SpeechBrain's checkpoint recovery
        "torch>=2.6",
        "torchaudio>=2.6",
        "transformers>=4.40",
        "hyperpyyaml>=1.2",
        "sentencepiece>=0.1.99",
        "protobuf>=3.20",
        "matplotlib>=3.7",
        "numpy>=1.24",
        "tqdm>=4.60",
        "pyyaml>=5.1",
    ],
    extras_require={
        # mtmm export --onnx, mtmm predict --backend onnx
        "onnx": ["onnx>=1.16", "onnxscript>=0.3", "onnxruntime>=1.18"],
        # mtmm serve: the HTTP API and the web page
        "serve": [
            "fastapi>=0.110,<1",
            "uvicorn>=0.29,<1",
            "python-multipart>=0.0.20,<0.1",
        ],
        # mtmm cv|table --launcher slurm: the runs as SLURM jobs
        "cluster": ["submitit>=1.5,<2"],
        "dev": [
            "pytest>=7",
            "ruff>=0.5",
            "yamllint>=1.35",
            "codespell>=2.3",
            "onnx>=1.16",
            "onnxscript>=0.3",
            "onnxruntime>=1.18",
            "fastapi>=0.110,<1",
            "uvicorn>=0.29,<1",
            "python-multipart>=0.0.20,<0.1",
            # the page's test in a real (headless) Chromium
            "selenium>=4.11",
            # tests/test_slurm.py (the SLURM launcher)
            "submitit>=1.5,<2",
        ],
        # make docs: the site of docs/ (mkdocs.yml), API reference included;
        # mkdocstrings-python brings griffe, which docs/scripts/ use
        "docs": [
            "mkdocs>=1.6,<2",
            "mkdocs-material>=9.5",
            "mkdocstrings>=1.0",
            "mkdocstrings-python>=2.0",
            "mkdocs-gen-files>=0.5",
            "mkdocs-literate-nav>=0.6",
        ],
    },
    entry_points={
        "console_scripts": ["mtmm = speechbrain_mtmm.cli:main"],
    },
)
