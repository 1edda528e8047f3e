#!/usr/bin/env sh
# Prints the model file for the current training inputs: models/reviewbot-<hash>.tar.gz, the hash
# over config.yml, domain.yml, rasa_project/data, rasa_project/ood (the out-of-domain detector's
# corpus) and connectors/rasa/nlu (the pipeline's own components). scripts/train-model.sh names what
# it trains so, and docker/rasa.Dockerfile runs this over the inputs it copied to refuse any other model.
#   scripts/model-name.sh              print the name
#   scripts/model-name.sh --check FILE fail unless FILE is that name (the image's build check)
set -eu
cd "$(dirname "$0")/.."
# Byte order, whatever the caller's locale: the image and a workstation must agree on the hash.
hash=$( { sha256sum config.yml domain.yml; find rasa_project/data rasa_project/ood connectors/rasa/nlu -type f ! -path '*/__pycache__/*' -print0 | LC_ALL=C sort -z \
  | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
name="models/reviewbot-$hash.tar.gz"
if [ "${1:-}" = "--check" ]; then
  given=${2:-}
  if [ -z "$given" ]; then
    echo "no model given: build with --build-arg MODEL=$name (\`make image-model\` prints it; \`make train\` makes it)" >&2
    exit 1
  fi
  if [ "$given" != "$name" ]; then
    echo "MODEL=$given was not trained on these inputs: config.yml, domain.yml and rasa_project/data" \
      "hash to $name (\`make train\`, then \`make image-model\`)" >&2
    exit 1
  fi
fi
echo "$name"
