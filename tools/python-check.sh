#!/usr/bin/env bash
# The Python package's checks (CI runs them; so can anyone with the .venv that
# .ci/run makes): the abi3 wheel built by maturin, installed into a fresh venv where
# `import rudder` and `python -m rudder policy test` must work with nothing else
# installed; then the same wheel in .venv (torch, Lightning, transformers) and the
# pytest suite in python/tests.
# Usage: tools/python-check.sh [VENV] (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
rm -rf target/wheels
"$venv/bin/maturin" build --release --quiet -m python/Cargo.toml -o target/wheels
wheel=$(ls target/wheels/rudder_policy-*.whl)
echo "built $wheel"

fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
python3 -m venv "$fresh/venv"
"$fresh/venv/bin/pip" install --quiet --disable-pip-version-check "$wheel"
"$fresh/venv/bin/python" -c "import rudder; print('import rudder:', rudder.Policies(['lr/cosine'], watch=False))"
(cd crates/policy && "$fresh/venv/bin/python" -m rudder policy test | tail -1)

"$venv/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps "$wheel"
"$venv/bin/python" -m pytest -q python/tests
