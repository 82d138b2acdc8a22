#!/usr/bin/env bash
# Creates .venv with soundtag and its test tools. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: a bare `torch` requirement pulled in by transformers would fetch whatever
# build the index serves (a multi-GB CUDA one on Linux). Set TORCH_SPEC to choose another build.
.venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
.venv/bin/python -m pip install -q -e ".[test]"
echo "soundtag installed in $(pwd)/.venv  (activate: source .venv/bin/activate)"
