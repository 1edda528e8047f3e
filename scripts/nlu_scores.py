"""Summarise a `rasa test nlu` output folder: intent accuracy, entity micro F1, the weakest.

    python scripts/nlu_scores.py results/nlu-heldout/heldout --label heldout --min-intent 0.93

Exits 1 when a figure is below its --min-* threshold (0 disables the check).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

AVERAGES = ("micro avg", "macro avg", "weighted avg", "accuracy")


def per_label(report: dict) -> dict[str, dict]:
    return {k: v for k, v in report.items() if isinstance(v, dict) and k not in AVERAGES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--label", default="")
    parser.add_argument("--min-intent", type=float, default=0.0)
    parser.add_argument("--min-entity", type=float, default=0.0)
    args = parser.parse_args(argv)

    intents = json.loads((args.folder / "intent_report.json").read_text())
    entities_file = args.folder / "DIETClassifier_report.json"
    entities = json.loads(entities_file.read_text()) if entities_file.exists() else {}
    accuracy = intents["accuracy"]
    support = intents["weighted avg"]["support"]
    entity_f1 = entities.get("micro avg", {}).get("f1-score", 0.0)

    weakest = sorted(per_label(intents).items(), key=lambda kv: kv[1]["f1-score"])[:5]
    print(f"{args.label}: intent accuracy {accuracy:.3f} (n={support}), "
          f"weighted F1 {intents['weighted avg']['f1-score']:.3f}; entity micro F1 {entity_f1:.3f}")
    print("  weakest intents: " + ", ".join(f"{k} {v['f1-score']:.2f}" for k, v in weakest))
    if entities:
        print("  entities: " + ", ".join(
            f"{k} {v['f1-score']:.2f} (n={v['support']})" for k, v in sorted(per_label(entities).items())))

    failed = []
    if accuracy < args.min_intent:
        failed.append(f"intent accuracy {accuracy:.3f} < {args.min_intent}")
    if args.min_entity and not entities:
        # No entity report means nothing was checked: a gate on entities must not pass by default.
        failed.append(f"no entity report ({entities_file.name}) to check entity F1 >= {args.min_entity} against")
    elif entities and entity_f1 < args.min_entity:
        failed.append(f"entity F1 {entity_f1:.3f} < {args.min_entity}")
    for reason in failed:
        print(f"  FAILED: {reason}; see {args.folder}/intent_errors.json and DIETClassifier_errors.json",
              file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
