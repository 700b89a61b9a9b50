#!/usr/bin/env bash
# One-time set-up on a fresh machine: system packages (audio decoding, speech synthesis,
# public-domain text), a virtual environment in .venv with the CPU build of torch, and w2v2.
# Safe to run again: every step is skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

# the second line: what compiling KenLM's lmplz needs
APT_PACKAGES="ffmpeg sox libsndfile1 espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts bible-kjv wordnet-base
  cmake g++ make libboost-program-options-dev libboost-system-dev libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev"
missing=""
for p in $APT_PACKAGES; do
  dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[setup] installing system packages:$missing"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  $PY -m venv .venv
fi
stamp=.venv/.w2v2-setup-$(cat pyproject.toml scripts/setup.sh | sha1sum | cut -c1-12)
if [ ! -f "$stamp" ]; then
  echo "[setup] installing python packages into .venv (first run takes a few minutes)"
  .venv/bin/pip install -q --upgrade pip
  # The CPU build of torch: a plain `torch` would pull a multi-GB CUDA build.
  .venv/bin/pip install -q "torch==2.13.0"
  .venv/bin/pip install -q "torchcodec==0.13.*" -e ".[test,onnx]"
  # n-gram LM beam search (optional at run time). pyctcdecode declares numpy<2 but runs on
  # numpy 2, so it goes in without its pins; kenlm compiles from source (a minute or two).
  .venv/bin/pip install -q pygtrie hypothesis
  .venv/bin/pip install -q --no-deps pyctcdecode==0.5.0 kenlm==0.3.0 || echo "[setup] LM decoding unavailable: kenlm did not build"
  rm -f .venv/.w2v2-setup-*
  touch "$stamp"
fi

# KenLM's lmplz (n-gram estimation, modified Kneser-Ney) and build_binary, which the kenlm wheel
# lacks: compiled from kenlm's source distribution on PyPI into .venv/bin (a few minutes, once).
if [ ! -x .venv/bin/lmplz ] || [ ! -x .venv/bin/build_binary ]; then
  echo "[setup] compiling KenLM's lmplz and build_binary (once, a few minutes)"
  work=$(mktemp -d)
  .venv/bin/pip download -q --no-binary kenlm --no-deps --no-build-isolation -d "$work" kenlm==0.3.0
  tar xzf "$work"/kenlm-0.3.0.tar.gz -C "$work"
  cmake -S "$work/kenlm-0.3.0" -B "$work/build" -DCMAKE_BUILD_TYPE=Release >"$work/cmake.log" 2>&1 || { tail -20 "$work/cmake.log"; exit 1; }
  make -C "$work/build" -j"$(nproc)" lmplz build_binary >"$work/make.log" 2>&1 || { tail -20 "$work/make.log"; exit 1; }
  cp "$work/build/bin/lmplz" "$work/build/bin/build_binary" .venv/bin/
  rm -rf "$work"
fi

# transformers' own test mixins (ModelTesterMixin, ConfigTester, the feature-extraction,
# tokenization and processing mixins) for tests/test_transformers_mixins_*.py: the top-level
# tests/*.py of the installed version's source distribution on PyPI, fetched once (the suite
# stays offline after).
tf_version=$(.venv/bin/python -c "import transformers; print(transformers.__version__)")
tf_tests=.venv/transformers-tests/$tf_version
if [ ! -f "$tf_tests/test_modeling_common.py" ]; then
  echo "[setup] fetching transformers $tf_version's test mixins (its source distribution, once)"
  work=$(mktemp -d)
  .venv/bin/pip download -q --no-binary :all: --no-deps -d "$work" "transformers==$tf_version"
  tar xzf "$work/transformers-$tf_version.tar.gz" -C "$work" "transformers-$tf_version/tests"
  mkdir -p "$tf_tests"
  cp "$work/transformers-$tf_version"/tests/*.py "$tf_tests/"
  # the config mixin executes the folder's __init__.py (empty in transformers' repo, absent from the sdist)
  touch "$tf_tests/__init__.py"
  rm -rf "$work"
fi
