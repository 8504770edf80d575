#!/usr/bin/env bash
# The GPU check, unattended, in under 8 minutes on one GPU: the CUDA tests, then one table
# (env steps/s at 4,096-65,536 envs; SAC updates/s and env steps/s with compile/cudagraphs off
# and on; the time to Pendulum >= -200). Through the device tool:
#
#     bash benchmarks/gpu-wheels.sh            # here, once: the wheels the GPU machine lacks
#     run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=540)
#
# Everything it prints is also written under $OUT (default runs/gpu).
set -uo pipefail
export PYTHONUNBUFFERED=1
out=${OUT:-runs/gpu}
mkdir -p "$out"
log() { echo "== $* ($(date +%T))" | tee -a "$out/gpu.md"; }

log "install"
if ! python3 -c "import gymnasium, hydra, stable_baselines3" 2>/dev/null; then
    [ -d .whl ] || { echo "no .whl folder: run benchmarks/gpu-wheels.sh and carry .whl"; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/site
fi
python3 -m pip install -q --no-index --no-deps --no-build-isolation --no-compile \
    --target /tmp/pathwise . || exit 1
export PYTHONPATH=/tmp/pathwise${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import torch, pathwise; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    | tee -a "$out/gpu.md" || exit 1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee -a "$out/gpu.md"

log "CUDA tests"
timeout 150 python3 -m pytest -p no:cacheprovider -q -m cuda -o addopts="" \
    tests/envs tests/policies tests/agents/test_nan_guard.py tests/training/test_torch_env_training.py \
    tests/training/test_compile.py 2>&1 | tail -n 15 | tee -a "$out/gpu.md"

log "env steps/s"
timeout 100 python3 benchmarks/envs.py --device cuda --seconds 0.5 --no-async 2>&1 \
    | grep -E "^(\||#|Goal)" | tee -a "$out/gpu.md"

log "SAC updates/s, compile and CUDA graphs"
timeout 170 python3 benchmarks/gpu_sac.py --num-envs 4096 2>&1 | tee -a "$out/gpu.md"

log "time to Pendulum >= -200 (pathwise on the GPU)"
timeout 120 python3 benchmarks/time_to_score.py --tasks Pendulum --seeds 1 --only pathwise \
    --device cuda --set num_envs=256 updates_per_step=0.03125 batch_size=1024 \
    learning_starts=5120 total_steps=200000 hidden_sizes=[256,256] 2>&1 \
    | tail -n 4 | tee -a "$out/gpu.md"
log "done"
