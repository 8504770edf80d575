#!/usr/bin/env bash
# The wheels benchmarks/gpu.sh installs on the GPU machine (Python 3.12, no network there; it
# has torch, numpy, rich, matplotlib, pytest, setuptools): gymnasium, Hydra, SB3 and what
# they need, pinned as constraints.txt pins them. Run here, in the repository's root.
set -euo pipefail
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
pin() { grep -E "^$1==" constraints.txt | head -n 1; }
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl \
    "$(pin gymnasium)" farama-notifications "$(pin hydra-core)" "$(pin omegaconf)" \
    "$(pin stable-baselines3)" "$(pin hydra-joblib-launcher)"
# omegaconf's parser runtime is a source distribution only: build its (pure Python) wheel here.
python3 -m pip wheel --quiet --no-deps -w .whl antlr4-python3-runtime==4.9.3
ls -la .whl
