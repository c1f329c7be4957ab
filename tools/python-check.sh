#!/usr/bin/env bash
# The Python package's checks (CI runs them; so can anyone with the .venv that
# .ci/run makes):
# 1. `pip install ./python` in a fresh venv with nothing but pip: the PEP 517 build
#    (maturin, fetched by pip into its build environment); there `import rudder`,
#    `python -m rudder --version` and `python -m rudder policy test` must work.
# 2. `maturin sdist`, installed the same way in another fresh venv.
# 3. The wheel in VENV (torch, Lightning, transformers, Keras, mypy, pytest): the
#    whole suite in python/tests, the doctests of the installed package, and
#    `mypy --strict` on the package and the docs' examples.
# Every build shares target/ (CARGO_TARGET_DIR), so no dependency is built twice.
# Usage: tools/python-check.sh [VENV] (default .venv)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
export CARGO_TARGET_DIR=$PWD/target
# The package's license files are the repository's (python/ is the sdist's root).
cmp LICENSE-MIT python/LICENSE-MIT && cmp LICENSE-APACHE python/LICENSE-APACHE
fresh=$(mktemp -d)
trap 'rm -rf "$fresh"' EXIT
pipq=(--quiet --disable-pip-version-check)

python3 -m venv "$fresh/by-pip"
"$fresh/by-pip/bin/pip" install "${pipq[@]}" ./python
"$fresh/by-pip/bin/python" -c "import rudder; print('pip install ./python:', rudder.__version__, rudder.Policies(['lr/cosine'], watch=False))"
"$fresh/by-pip/bin/python" -m rudder --version
(cd crates/policy && "$fresh/by-pip/bin/python" -m rudder policy test | tail -1)

"$venv/bin/maturin" sdist -m python/Cargo.toml -o "$fresh/sdist"
sdist=$(ls "$fresh"/sdist/rudder_policy-*.tar.gz)
python3 -m venv "$fresh/by-sdist"
"$fresh/by-sdist/bin/pip" install "${pipq[@]}" "$sdist"
echo "from $(basename "$sdist"): $("$fresh/by-sdist/bin/python" -m rudder --version)"

rm -rf target/wheels
"$venv/bin/maturin" build --release --quiet -m python/Cargo.toml -o target/wheels
wheel=$(ls target/wheels/rudder_policy-*.whl)
"$venv/bin/pip" install "${pipq[@]}" --force-reinstall --no-deps "$wheel"
export KERAS_BACKEND=torch
"$venv/bin/python" -m pytest -q python/tests
(cd "$fresh" && "$OLDPWD/$venv/bin/python" -m pytest -q -p no:cacheprovider --doctest-modules --pyargs rudder)
(cd python && "../$venv/bin/mypy" --strict rudder examples)
