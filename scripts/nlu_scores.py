"""Summarise a `rasa test nlu` output folder: intent accuracy, entity F1 per entity and overall.

    python scripts/nlu_scores.py results/nlu-heldout/heldout --label heldout --min-intent 0.94 \
        --min-entity 0.92 --min-entity-each email=0.98,phone_number=0.98,order_id=0.98 \
        --owner RegexEntityExtractor=email,phone_number,order_id --owner ProductMentionExtractor=product
    python scripts/nlu_scores.py results/nlu-heldout/ood_dev --label ood_dev --ood \
        --model models/current.tar.gz --nlu tests/nlu/ood/ood_dev.yml --min-rejected 0.90 --max-write 0.02

Rasa scores each entity extractor on its own against every annotation. The bot uses one
extractor per entity (--owner: the pattern extractor for addresses, numbers and order
references, the product-mention extractor for products, DIET for the rest), so an entity's figures come from its owner's report and the
overall micro F1 is summed over the entities from those figures.

--ood scores a set of messages the business does not serve (all annotated out_of_scope): the
share the bot rejects (out_of_scope or nlu_fallback) and the share that would start a write
workflow, from the model's predictions (--model and --nlu parse the set first).

Exits 1 when a figure is past its threshold (0 disables a --min-* check) or a report it needs is missing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

AVERAGES = ("micro avg", "macro avg", "weighted avg", "accuracy")
DEFAULT_EXTRACTOR = "DIETClassifier"
REJECTED = {"out_of_scope", "nlu_fallback"}
# Intents whose workflow changes something for the customer (domain.yml): an out-of-domain
# message must never start one.
WRITE_INTENTS = {
    "book_appointment",
    "reschedule_appointment",
    "cancel_appointment",
    "add_to_cart",
    "place_order",
    "cancel_order",
    "update_contact",
    "give_feedback",
}


def per_label(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in report.items() if isinstance(v, dict) and k not in AVERAGES}


def pairs(text: str) -> dict[str, str]:
    """Parse "a=1,b=2" into {"a": "1", "b": "2"}."""
    return dict(item.split("=", 1) for item in text.split(",") if item) if text else {}


def owners(spec: list[str]) -> dict[str, str]:
    """--owner EXTRACTOR=entity,entity ... -> {entity: extractor}."""
    owned = {}
    for item in spec:
        extractor, _, entities = item.partition("=")
        owned.update({entity: extractor for entity in entities.split(",") if entity})
    return owned


def entity_figures(folder: Path, owned: dict[str, str]) -> tuple[dict[str, dict[str, Any]], float, list[str]]:
    """Per entity {f1, precision, recall, support} from its owner's report, the micro F1, missing reports."""
    reports: dict[str, dict[str, Any]] = {}
    missing = []
    for extractor in {DEFAULT_EXTRACTOR, *owned.values()}:
        path = folder / f"{extractor}_report.json"
        if path.exists():
            reports[extractor] = per_label(json.loads(path.read_text()))
        else:
            missing.append(path.name)
    labels = sorted({label for report in reports.values() for label in report})
    figures: dict[str, dict[str, Any]] = {}
    true_positives = predicted = support = 0.0
    for label in labels:
        figure = reports.get(owned.get(label, DEFAULT_EXTRACTOR), {}).get(label)
        if figure is None:
            continue
        figures[label] = figure
        tp = figure["recall"] * figure["support"]
        # Rasa's report gives precision, not counts: predicted = TP / precision. With no true
        # positive the count of wrong predictions is not recoverable; assume as many as the support.
        pred = tp / figure["precision"] if figure["precision"] > 0 else float(figure["support"])
        true_positives += tp
        predicted += pred
        support += figure["support"]
    precision = true_positives / predicted if predicted else 0.0
    recall = true_positives / support if support else 0.0
    micro = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return figures, micro, missing


def predict(model: Path, nlu: Path, folder: Path) -> None:
    """Parse every message of an NLU file with the model into folder/predictions.json.

    `rasa test nlu` scores no intents on a set with a single intent, so the
    out-of-domain set is parsed here, through the whole pipeline (FallbackClassifier included).
    """
    import asyncio
    import logging

    import structlog
    from rasa.core.agent import Agent
    from rasa.shared.nlu.training_data.loading import load_data

    # Rasa's structured log writes a debug line per parsed message to stdout.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))

    async def run() -> list[dict[str, Any]]:
        agent = Agent.load(str(model))
        found = []
        for example in load_data(str(nlu)).intent_examples:
            parsed = await agent.parse_message(example.get("text"))
            found.append({"text": example.get("text"), "intent": parsed["intent"]})
        return found

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.json").write_text(json.dumps(asyncio.run(run()), indent=1))


def score_ood(args: argparse.Namespace) -> int:
    if args.model and args.nlu:
        predict(args.model, args.nlu, args.folder)
    predictions_file = args.folder / "predictions.json"
    if not predictions_file.exists():
        print(f"  FAILED: no {predictions_file}", file=sys.stderr)
        return 1
    predictions = json.loads(predictions_file.read_text())
    total = len(predictions)
    predicted = [p["intent"]["name"] for p in predictions]
    accepted = [p for p in predicted if p not in REJECTED]
    writes = [p for p in predicted if p in WRITE_INTENTS]
    rejected_share = 1 - len(accepted) / total
    write_share = len(writes) / total
    counts: dict[str, int] = {}
    for name in accepted:
        counts[name] = counts.get(name, 0) + 1
    print(
        f"{args.label}: out-of-domain rejected {rejected_share:.3f} (n={total}), "
        f"started a write workflow {write_share:.3f} ({len(writes)})"
    )
    print("  taken for: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])))
    failed = []
    if rejected_share < args.min_rejected:
        failed.append(f"rejected {rejected_share:.3f} < {args.min_rejected}")
    if write_share > args.max_write:
        failed.append(f"write share {write_share:.3f} > {args.max_write}")
    for reason in failed:
        # stdout: test-nlu.sh keeps Rasa's stderr of the parse in a log file.
        print(f"  FAILED: {reason}; see {predictions_file}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--label", default="")
    parser.add_argument("--min-intent", type=float, default=0.0)
    parser.add_argument("--min-entity", type=float, default=0.0)
    parser.add_argument("--min-entity-each", default="", help="entity=F1,... each entity's own threshold")
    parser.add_argument("--owner", action="append", default=[], help="EXTRACTOR=entity,... (default DIET)")
    parser.add_argument("--totals-only", action="store_true", help="a sealed set: print the totals, nothing else")
    parser.add_argument("--ood", action="store_true", help="score an out-of-domain set")
    parser.add_argument("--min-rejected", type=float, default=0.0)
    parser.add_argument("--max-write", type=float, default=1.0)
    parser.add_argument("--model", type=Path, help="with --ood and --nlu: parse the set with this model first")
    parser.add_argument("--nlu", type=Path, help="the out-of-domain NLU file")
    args = parser.parse_args(argv)
    if args.ood:
        return score_ood(args)

    intents = json.loads((args.folder / "intent_report.json").read_text())
    accuracy = intents["accuracy"]
    support = intents["weighted avg"]["support"]
    figures, entity_f1, missing = entity_figures(args.folder, owners(args.owner))

    print(
        f"{args.label}: intent accuracy {accuracy:.3f} (n={support}), "
        f"weighted F1 {intents['weighted avg']['f1-score']:.3f}; entity micro F1 {entity_f1:.3f}"
    )
    if not args.totals_only:
        weakest = sorted(per_label(intents).items(), key=lambda kv: kv[1]["f1-score"])[:5]
        print("  weakest intents: " + ", ".join(f"{k} {v['f1-score']:.2f}" for k, v in weakest))
        if figures:
            print(
                "  entities: "
                + ", ".join(f"{k} {v['f1-score']:.2f} (n={v['support']})" for k, v in sorted(figures.items()))
            )

    failed = []
    if accuracy < args.min_intent:
        failed.append(f"intent accuracy {accuracy:.3f} < {args.min_intent}")
    wanted_each = {entity: float(value) for entity, value in pairs(args.min_entity_each).items()}
    if (args.min_entity or wanted_each) and missing:
        # A missing report means nothing was checked: a gate on entities must not pass by default.
        failed.append(f"no entity report ({', '.join(missing)}) to check the entity thresholds against")
    else:
        if args.min_entity and entity_f1 < args.min_entity:
            failed.append(f"entity F1 {entity_f1:.3f} < {args.min_entity}")
        for entity, threshold in sorted(wanted_each.items()):
            figure = figures.get(entity)
            if figure is None or figure["support"] == 0:
                continue  # the set has no such entity to score
            if figure["f1-score"] < threshold:
                shown = "an entity" if args.totals_only else f"{entity} F1 {figure['f1-score']:.3f}"
                failed.append(f"{shown} < {threshold}")
    for reason in failed:
        print(
            f"  FAILED: {reason}; see {args.folder}/intent_errors.json and the *_errors.json files",
            file=sys.stderr,
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
