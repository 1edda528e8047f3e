#!/usr/bin/env bash
# NLU cross-validation (FOLDS folds, default 5) of config.yml on rasa_project/data; prints
# intent accuracy / F1 and entity F1, and keeps Rasa's reports in results/nlu-cv/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pipeline's own NLU components (connectors/rasa/nlu) are imported from the checkout.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RASA=${RASA:-.venv-rasa/bin/rasa}
PY=${PY:-.venv-rasa/bin/python}
out=results/nlu-cv
rm -rf "$out" && mkdir -p "$out"
start=$(date +%s)
RASA_TELEMETRY_ENABLED=false "$RASA" test nlu --config config.yml --nlu rasa_project/data --domain domain.yml \
  --cross-validation --folds "${FOLDS:-5}" --out "$out" >"$out/rasa-test-nlu.log" 2>&1
echo "cross-validation took $(( $(date +%s) - start )) s" >&2
"$PY" scripts/nlu_scores.py "$out" --label "${FOLDS:-5}-fold cross-validation" \
  --owner RegexEntityExtractor=email,phone_number,order_id --owner ProductMentionExtractor=product
