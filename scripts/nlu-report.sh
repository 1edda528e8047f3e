#!/usr/bin/env bash
# NLU cross-validation (FOLDS folds, default 5) of config.yml on rasa_project/data; prints
# intent accuracy / F1 and entity F1, and keeps Rasa's reports in results/nlu-cv/.
set -euo pipefail
cd "$(dirname "$0")/.."
RASA=${RASA:-.venv-rasa/bin/rasa}
PY=${PY:-.venv-rasa/bin/python}
out=results/nlu-cv
rm -rf "$out" && mkdir -p "$out"
start=$(date +%s)
RASA_TELEMETRY_ENABLED=false "$RASA" test nlu --config config.yml --nlu rasa_project/data --domain domain.yml \
  --cross-validation --folds "${FOLDS:-5}" --out "$out" >"$out/rasa-test-nlu.log" 2>&1
echo "cross-validation took $(( $(date +%s) - start )) s" >&2
"$PY" - "$out" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
intent = json.loads((out / "intent_report.json").read_text())
print(f"intents:  accuracy {intent['accuracy']:.3f}  weighted F1 {intent['weighted avg']['f1-score']:.3f}  "
      f"(n={intent['weighted avg']['support']})")
diet = out / "DIETClassifier_report.json"
if diet.exists():
    ent = json.loads(diet.read_text())
    avg = ent.get("micro avg") or ent.get("accuracy")
    print(f"entities: micro F1 {ent['micro avg']['f1-score']:.3f}  precision {ent['micro avg']['precision']:.3f}  "
          f"recall {ent['micro avg']['recall']:.3f}")
    for name, row in sorted(ent.items()):
        if isinstance(row, dict) and name not in ("micro avg", "macro avg", "weighted avg"):
            print(f"  {name:14s} F1 {row['f1-score']:.3f} (n={row['support']})")
low = sorted(((k, v) for k, v in intent.items() if isinstance(v, dict) and "f1-score" in v
              and k not in ("micro avg", "macro avg", "weighted avg")), key=lambda kv: kv[1]["f1-score"])[:5]
print("weakest intents: " + ", ".join(f"{k} {v['f1-score']:.2f}" for k, v in low))
PY
