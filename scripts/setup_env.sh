#!/usr/bin/env bash
# Create (when missing) the virtual environment .venv at the repository root and install
# amos-fairseq into it with everything it needs. Safe to run again: it only installs what
# is missing, and pip's wheel cache makes a second install on the same machine fast.
#
#   EXTRAS=test,plot bash scripts/setup_env.sh
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python="${PYTHON:-python3}"
extras="${EXTRAS:-test}"

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv with $($python --version)"
    "$python" -m venv .venv
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
stamp=".venv/.amos-installed-$(cat setup.py | sha1sum | cut -c1-12)-$extras"
if [ -f "$stamp" ]; then
    echo "[setup] .venv is up to date"
    exit 0
fi
# torch first: an installed torch is kept; otherwise the CPU build, so that nothing later
# resolves a multi-GB CUDA build. Every later pip call, fairseq's isolated build included,
# is then constrained to exactly the torch that is installed.
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    echo "[setup] installing torch ${TORCH_VERSION:-2.13.0} (CPU build)"
    .venv/bin/pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
.venv/bin/python -c "import torch; print('torch==' + torch.__version__.split('+')[0])" > .venv/torch-constraint.txt
export PIP_CONSTRAINT="$root/.venv/torch-constraint.txt"
echo "[setup] installing amos-fairseq[$extras] and fairseq (the first build of fairseq-fixed takes ~5-7 min on 2 cores; cached afterwards)"
.venv/bin/pip install -q -e ".[$extras]"
.venv/bin/python -c "import amos_fairseq, fairseq; print('[setup] ok: fairseq', fairseq.__version__)"
rm -f .venv/.amos-installed-*
touch "$stamp"
