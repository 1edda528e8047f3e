"""Build the out-of-domain corpus the detector trains on, and the public part of the development set.

Source: the CLINC150 intent benchmark (Larson et al., 2019, "An Evaluation Dataset for Intent
Classification and Out-of-Scope Prediction", CC BY 3.0, github.com/clinc/oos-eval, data_full.json).
Only its *train* and *validation* splits are read; its test splits are never opened, because they
are what a fair check of the detector uses.

    .venv/bin/python scripts/build_ood_corpus.py /path/to/data_full.json /path/to/domains.json

writes
- rasa_project/ood/clinc_train.txt: one message a line, from the train split (domains this business
  does not serve, and CLINC's own out-of-scope train split);
- tests/nlu/ood/ood_clinc_val.yml: a development set from the validation split (the same domains,
  a few messages per intent, and the out-of-scope validation split), never trained on.

Intents close to what this salon and shop does (a greeting, thanks, yes/no, "where is my order",
"order more of X") are left out: they are in-domain here, not something to reject.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# How the project compares NLU examples (the overlap test and the review export use it too).
from conversation_api.review.export import examples_of, normalise  # noqa: E402

# CLINC domains that are requests to other businesses or general assistants, not small talk or
# the assistant's own controls (small_talk and meta hold greetings, thanks, yes/no, cancel).
DOMAINS = ("banking", "credit_cards", "kitchen_and_dining", "home", "auto_and_commute", "travel", "utility", "work")
# In-domain here: this shop takes orders and tracks them.
SKIP_INTENTS = {"order", "order_status"}
DEV_PER_INTENT = 4


def yaml_examples(folder: Path, skip: Path | None = None) -> set[str]:
    return {normalise(e) for path in folder.rglob("*.yml") if path != skip for _, e in examples_of(path)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_full", type=Path)
    parser.add_argument("domains", type=Path)
    args = parser.parse_args()
    data = json.loads(args.data_full.read_text())
    domains = json.loads(args.domains.read_text())
    wanted = {intent for domain in DOMAINS for intent in domains[domain]} - SKIP_INTENTS
    dev_path = ROOT / "tests/nlu/ood/ood_clinc_val.yml"
    in_domain = yaml_examples(ROOT / "rasa_project/data")
    # The project's own evaluation sets stay held out from the corpus too.
    evaluation = yaml_examples(ROOT / "tests/nlu", skip=dev_path)

    train = [text for text, intent in data["train"] if intent in wanted] + [text for text, _ in data["oos_train"]]
    train = sorted({normalise(t) for t in train} - in_domain - evaluation)
    seen = set(train) | in_domain

    rng = random.Random(7)
    by_intent: dict[str, list[str]] = {}
    for text, intent in data["val"]:
        if intent in wanted:
            by_intent.setdefault(intent, []).append(text)
    dev = [t for intent in sorted(by_intent) for t in rng.sample(by_intent[intent], DEV_PER_INTENT)]
    dev += [text for text, _ in data["oos_val"]]
    dev = sorted({normalise(t) for t in dev} - seen)

    out = ROOT / "rasa_project/ood/clinc_train.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(train) + "\n")
    header = (
        'version: "3.1"\n'
        "# Out-of-domain development set from the CLINC150 benchmark's *validation* split (CC BY 3.0,\n"
        "# github.com/clinc/oos-eval): requests to banks, card issuers, restaurants, home assistants, car\n"
        "# services, travel agents, utilities and employers, and CLINC's out-of-scope validation messages.\n"
        "# Built by scripts/build_ood_corpus.py; never trained on (tests/unit/test_nlu_heldout.py checks it\n"
        "# against rasa_project/data and the detector's corpus). The benchmark's test split is not used here.\n"
        "nlu:\n  - intent: out_of_scope\n    examples: |\n"
    )
    dev_path.write_text(header + "".join(f"      - {t}\n" for t in dev))
    print(f"{out.relative_to(ROOT)}: {len(train)} messages; {dev_path.relative_to(ROOT)}: {len(dev)} messages")
    return 0


if __name__ == "__main__":
    sys.exit(main())
