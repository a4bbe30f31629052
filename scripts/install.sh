#!/usr/bin/env bash
# Install mixopt into a virtual environment (./.venv unless MIXOPT_VENV is set).
#   scripts/install.sh          the service and CLI
#   scripts/install.sh dev      plus the test/lint tools and the optional HF + Lightning integrations
# torch is installed first and pinned (scripts/constraints.txt): on the CPU machines this project targets,
# torch==2.13.0 resolves to a local CPU build, and a bare `torch` requirement would pull CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${MIXOPT_VENV:-.venv}
extras=${1:-}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
py="$venv/bin/python"
echo "mixopt: installing into $venv (torch pinned to 2.13.0)"
"$py" -m pip install -q -c scripts/constraints.txt "torch==2.13.0"
"$py" -m pip install -q -c scripts/constraints.txt -e ".${extras:+[$extras]}"
"$py" -c "import torch, mixopt; print(f'mixopt {mixopt.__version__}, torch {torch.__version__}')"
