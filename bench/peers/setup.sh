#!/usr/bin/env bash
# Creates the peers' own virtual environments for bench/bench_peers.py and
# bench/bench_time_to_accuracy.py, beside this file:
#   .venv-darts            darts[torch] (RNNModel, BlockRNNModel) + pandas
#   .venv-neuralforecast   neuralforecast (LSTM) + pandas
# Each gets torch==2.13.0 first (the CPU build on disk), then its library under constraints.txt,
# so pip can never swap torch for a CUDA build. pip only: uv or poetry would fetch CUDA wheels.
# Re-running is cheap: an existing venv is kept and pip skips what is installed.
#
#   bash bench/peers/setup.sh            # both
#   bash bench/peers/setup.sh darts      # one of them
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-python3}"
peers=("$@")
[ ${#peers[@]} -eq 0 ] && peers=(darts neuralforecast)

for peer in "${peers[@]}"; do
    case "$peer" in
        darts) pkgs=("darts[torch]" pandas) ;;
        neuralforecast) pkgs=(neuralforecast pandas) ;;
        *) echo "setup.sh: unknown peer '$peer' (expected darts or neuralforecast)" >&2; exit 2 ;;
    esac
    venv="$here/.venv-$peer"
    [ -x "$venv/bin/python" ] || "$py" -m venv "$venv"
    "$venv/bin/pip" install -q torch==2.13.0
    "$venv/bin/pip" install -q -c "$here/constraints.txt" "${pkgs[@]}"
    "$venv/bin/python" - "$peer" <<'PY'
import sys
from importlib.metadata import version

peer = sys.argv[1]
names = ["torch", peer, "pytorch-lightning", "pandas", "numpy"]
print(peer + ": " + ", ".join(f"{n} {version(n)}" for n in names))
PY
done
