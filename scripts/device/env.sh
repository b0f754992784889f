# Sourced by the device scripts, from the repository root. Here: the project's .venv. On the device machine (no
# .venv travels; its python3 holds CUDA PyTorch but neither diffusers nor PyAV, and nothing can be fetched there):
# the wheels carried in .whl/ go to /tmp/site, and a PyAV stand-in (scripts/device/stubs) goes on the path, since
# these scripts never open a video file. Make the wheels here once (then carry [".whl"]):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl diffusers==0.42.1
if [ -x .venv/bin/python ]; then
  PY=${PY:-.venv/bin/python}
else
  PY=python3
  if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl
  fi
  export PYTHONPATH="scripts/device/stubs:src:/tmp/site"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
fi
export PYTHONUNBUFFERED=1
