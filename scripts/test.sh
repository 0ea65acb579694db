#!/usr/bin/env bash
# Install (first time only) and run the test suite. Tests that need ../shared/data skip without it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Two pytest-xdist workers (ODDKIT_TEST_WORKERS to change; 0 runs in one process), one module per worker at a
# time, so that a module's fixtures are built once. Each worker's torch and BLAS use one thread: two workers on
# two cores then keep both busy without threads spinning against each other, where one process with two
# threads used one core on average. Measured on the team's 2-core machine: 375 s against 556-613 s.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1} \
  MKL_NUM_THREADS=${MKL_NUM_THREADS:-1}
exec .venv/bin/python -m pytest -n "${ODDKIT_TEST_WORKERS:-2}" --dist loadfile "$@"
