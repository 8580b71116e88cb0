#!/usr/bin/env bash
# Installs the project with its test extra (torch's CPU wheel first), runs ruff, then the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
python -c "import torch" 2>/dev/null || pip install -q torch==2.13.0
pip install -q -e ".[test]"
# monailabel pins numpy<2 and a CUDA torch through its dependencies: install it alone, with only what its bundle tasks import.
python -c "import monailabel, expiring_dict, nrrd, shapely" 2>/dev/null || pip install -q --no-deps monailabel==0.8.5 expiring-dict sortedcontainers pynrrd shapely
# lint first (rules in pyproject.toml): seconds, and a style slip fails before the long test run
python -m ruff check .
python -m pytest tests "$@"
