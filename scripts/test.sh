#!/usr/bin/env bash
# Set up .venv (when needed) and run the test suite. Extra arguments go to pytest.
#
#   bash scripts/test.sh                 # everything (~10 min on 2 CPU cores)
#   bash scripts/test.sh tests/test_model.py -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
EXTRAS="${EXTRAS:-test,hf,plot}" bash scripts/setup_env.sh
# Tiny models gain nothing from intra-op threads, and two threads thrash on a busy machine.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
exec .venv/bin/python -m pytest "$@"
