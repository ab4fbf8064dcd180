#!/usr/bin/env bash
# The Python package's tests (python/tests, pytest) in the two environments it supports, each
# after `pip install ./python`: Debian's Python with its numpy 1.24 and GDAL bindings (a venv
# with --system-site-packages), and numpy 2 in a venv without them. .ci/setup makes both venvs.
set -euo pipefail
cd "$(dirname "$0")/.."
for venv in "${SHEPSEG_PY_SYSTEM:-$HOME/.cache/shepseg/py-system}" \
    "${SHEPSEG_PY_NUMPY2:-$HOME/.cache/shepseg/py-numpy2}"; do
    "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps ./python
    "$venv/bin/python" -c 'import numpy, shepseg
print("shepseg", shepseg.__version__, "with numpy", numpy.__version__)'
    (cd python && "$venv/bin/pytest" -p no:cacheprovider -q tests)
done
