"""amos-fairseq: a fairseq plug-in for ELECTRA-style encoder pretraining (ELECTRA, AMOS,
focal-hardness replacement sampling)."""

from setuptools import find_packages, setup

setup(
    name="amos-fairseq",
    version="0.1.0",
    description="ELECTRA-style pretraining with AMOS and focal-hardness replacement sampling, as a fairseq plug-in",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["amos_fairseq", "amos_fairseq.*"]),
    python_requires=">=3.9",
    install_requires=[
        # A range, not a pin: an installed torch is kept. scripts/setup_env.sh installs
        # the CPU build 2.13.0 when there is none and constrains pip to what is installed.
        "torch>=2.1",
        # fairseq 0.12.2 cannot be imported on Python >= 3.11; fairseq-fixed is upstream
        # main (2024-01-24) plus the two-file dataclass fix, built from readable source.
        "fairseq==0.12.2; python_version < '3.11'",
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "sentencepiece>=0.1.99",
        "tensorboardX==2.6.5",
        "numpy>=1.24",
    ],
    extras_require={
        "test": ["pytest>=7"],
        "plot": ["matplotlib>=3.7"],
        # scripts/export_hf.py: ELECTRA / AMOS-ELECTRA models + a sentencepiece tokenizer (tested with 5.23.0)
        # accelerate: transformers' Trainer needs it (tested on the AMOS-ELECTRA export)
        "hf": ["transformers>=5.0,<6", "accelerate>=1.0"],
    },
)
