#!/usr/bin/env bash
# The main job on the embedded default: label an example archive into ./soundtag.db (SQLite)
# and show the best label of each file. Run after ./setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m examples.make_archive examples/archive
model="${SOUNDTAG_MODEL:-laion/clap-htsat-unfused}"
if ! timeout 120 .venv/bin/soundtag fetch-model "$model"; then
  echo "!! $model could not be fetched (no network, or HF_HUB_OFFLINE=1 without it in the cache)." >&2
  echo "!! Using a randomly initialised CLAP instead: same code path, MEANINGLESS labels." >&2
  model=examples/.models/clap-random
  [ -f "$model/model.safetensors" ] || .venv/bin/python -m model.random_clap tiny "$model" >/dev/null
fi
.venv/bin/soundtag run examples/archive --taxonomy examples/taxonomy.yaml --model "$model"
.venv/bin/python - <<'PY'
import sqlite3
db = sqlite3.connect("soundtag.db")
for uri, label, score, sim in db.execute(
        "select uri, label, round(score, 3), round(similarity, 3) from file_labels where rank = 1 order by uri"):
    print(f"{label:>14}  score {score:<6} cosine {sim:<7} {uri}")
for uri, error in db.execute("select uri, error from files where status = 'failed'"):
    print(f"{'failed':>14}  {error}  {uri}")
PY
