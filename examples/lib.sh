# Shared by the recipes in examples/ (sourced, not run): repository root, the virtual
# environment, and small helpers. Set SKIP_SETUP=1 to use an existing .venv as it is.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ "${SKIP_SETUP:-0}" != 1 ]; then
    bash scripts/setup_env.sh >&2
fi
PY="$ROOT/.venv/bin/python"
TRAIN="$ROOT/.venv/bin/fairseq-train"
USER_DIR="$ROOT/amos_fairseq"

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# checkpoint_field CKPT FIELD: a field of the model config saved in a checkpoint (arch, max_positions, ...)
checkpoint_field() {
    "$PY" - "$1" "$2" <<'PYEOF'
import sys
import torch
state = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
model = state["cfg"]["model"] if state.get("cfg") is not None else state["args"]
print(getattr(model, sys.argv[2], None) if not isinstance(model, dict) else model.get(sys.argv[2]))
PYEOF
}

# last_metric LOG KIND NAME: the last value of NAME on fairseq's '| KIND |' log lines
last_metric() {
    grep "| $2 |" "$1" | tail -1 | grep -oE "(^|[ |,])$3[ =][-0-9.e]+" | grep -oE "[-0-9.e]+$" || true
}
