# Source this on a lent GPU machine, from the repo root, before running a benchmark:
#   source benchmarks/device_env.sh
# Installs the carried peer wheels (.whl/: fla 0.6.0, accelerated-scan 0.3.1, omegaconf) into /tmp/site
# and exposes this checkout as the `seqlab` namespace package without a pip install.
# (no .whl/: the peers' rows fail on import and the rest runs)
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || return 1
else
    echo "device_env.sh: no .whl/ wheels carried; peers (fla, accelerated-scan) are not installed"
fi
mkdir -p /tmp/sl/seqlab
for d in core kernels forecasting vision audio recsys graphs configs tests; do ln -sfn "$PWD/$d" "/tmp/sl/seqlab/$d"; done
export PYTHONPATH=/tmp/sl:/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
