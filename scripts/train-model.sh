#!/usr/bin/env bash
# Trains the Rasa model only when its inputs changed.
# The model is named by a hash of config.yml, domain.yml and rasa_project/data, kept in
# models/ and in a machine-wide cache ($MODEL_CACHE), and linked as models/current.tar.gz.
set -euo pipefail
cd "$(dirname "$0")/.."
# The pipeline's own NLU components (connectors/rasa/nlu) are imported from the checkout.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
RASA=${RASA:-.venv-rasa/bin/rasa}
CACHE=${MODEL_CACHE:-$HOME/.cache/reviewbot/models}
name=$(basename "$(scripts/model-name.sh)" .tar.gz)
mkdir -p models "$CACHE"
if [ ! -f "models/$name.tar.gz" ]; then
  if [ -f "$CACHE/$name.tar.gz" ]; then
    echo "model $name: taken from cache $CACHE" >&2
    cp "$CACHE/$name.tar.gz" "models/$name.tar.gz.tmp"
  else
    echo "model $name: inputs changed, training (1-3 minutes)" >&2
    RASA_TELEMETRY_ENABLED=false "$RASA" train --config config.yml --domain domain.yml --data rasa_project/data \
      --out models/.training --fixed-model-name "$name" >&2
    mv "models/.training/$name.tar.gz" "models/$name.tar.gz.tmp"
    cp "models/$name.tar.gz.tmp" "$CACHE/$name.tar.gz.tmp" && mv "$CACHE/$name.tar.gz.tmp" "$CACHE/$name.tar.gz"
  fi
  mv "models/$name.tar.gz.tmp" "models/$name.tar.gz"
else
  echo "model $name: up to date" >&2
fi
ln -sfn "$name.tar.gz" models/current.tar.gz
echo "models/$name.tar.gz"
