# Sourced by the GPU scripts (scripts/gpu_check.sh, perf/gpu_train.sh) from the
# repository root: packages a lent GPU machine lacks come as wheels carried in .whl/.
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/repro-site .whl/*.whl
  export PYTHONPATH="/tmp/repro-site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 REPRO_QUIET=1 TRL_EXPERIMENTAL_SILENCE=1
