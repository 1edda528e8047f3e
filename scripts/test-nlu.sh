#!/usr/bin/env bash
# Scores models/current.tar.gz on the held-out NLU sets in tests/nlu (messages written
# independently of rasa_project/data and never trained on). Prints intent accuracy and
# entity micro F1 per set, keeps Rasa's reports in results/nlu-heldout/<set>/, and fails
# when a set falls below NLU_MIN_INTENT_ACCURACY / NLU_MIN_ENTITY_F1.
set -euo pipefail
cd "$(dirname "$0")/.."
RASA=${RASA:-.venv-rasa/bin/rasa}
PY=${PY:-.venv-rasa/bin/python}
MIN_INTENT=${NLU_MIN_INTENT_ACCURACY:-0.94}
MIN_ENTITY=${NLU_MIN_ENTITY_F1:-0.90}
status=0
for set in tests/nlu/*.yml; do
  name=$(basename "$set" .yml)
  out=results/nlu-heldout/$name
  rm -rf "$out" && mkdir -p "$out"
  RASA_TELEMETRY_ENABLED=false "$RASA" test nlu --model models/current.tar.gz --nlu "$set" --domain domain.yml \
    --out "$out" >"$out/rasa-test-nlu.log" 2>&1 || { echo "rasa test nlu failed on $set; see $out/rasa-test-nlu.log" >&2; exit 1; }
  "$PY" scripts/nlu_scores.py "$out" --label "$name" --min-intent "$MIN_INTENT" --min-entity "$MIN_ENTITY" || status=1
done
exit $status
