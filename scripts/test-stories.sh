#!/usr/bin/env bash
# Runs the Rasa test stories (rasa_project/tests) against models/current.tar.gz and fails
# when any story fails. Reports go to results/stories/.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pipeline's own NLU components (connectors/rasa/nlu) are imported from the checkout.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RASA=${RASA:-.venv-rasa/bin/rasa}
out=results/stories
rm -rf "$out" && mkdir -p "$out"
RASA_TELEMETRY_ENABLED=false "$RASA" test core --model models/current.tar.gz --stories rasa_project/tests \
  --out "$out" --e2e --fail-on-prediction-errors >"$out/rasa-test.log" 2>&1 || {
  echo "test stories failed; see $out/failed_test_stories.yml and $out/rasa-test.log" >&2
  grep -E "Correct|Failed|story" "$out/rasa-test.log" | tail -20 >&2 || true
  exit 1
}
grep -hE "Finished collecting predictions|Correct:|Failed story" "$out/rasa-test.log" | tail -3 >&2 || true
echo "test stories: all passed ($(grep -c '^ *- story:' rasa_project/tests/*.yml) stories)" >&2
