"""The held-out NLU sets are held out: no example in tests/nlu appears in the training data.

Compared after removing entity annotations, case, punctuation and extra spaces, so "Where is
my order?" in a held-out set and "where is my order" in training count as the same message.
"""

from __future__ import annotations

from pathlib import Path

import yaml

# The review export refuses held-out examples by this very comparison.
from conversation_api.review.export import examples_of, normalise

ROOT = Path(__file__).resolve().parents[2]


def examples(path: Path) -> list[str]:
    return [example for _, example in examples_of(path)]


def test_no_held_out_example_is_in_the_training_data() -> None:
    training = {normalise(e) for path in (ROOT / "rasa_project/data").rglob("*.yml") for e in examples(path)}
    assert len(training) > 1000
    for held_out in sorted((ROOT / "tests/nlu").rglob("*.yml")):
        shared = [e for e in examples(held_out) if normalise(e) in training]
        # The sealed held-out sets are large; the development sets (entities, out-of-domain) smaller.
        assert len(examples(held_out)) > (250 if held_out.stem.startswith("heldout") else 50)
        assert shared == [], f"{held_out.name} shares {len(shared)} examples with rasa_project/data: {shared[:5]}"


def corpus(path: Path) -> list[str]:
    """The out-of-domain detector's corpus files: one message a line, # for comments."""
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def test_no_evaluation_example_is_in_the_out_of_domain_corpus() -> None:
    """The detector trains on rasa_project/ood/*.txt besides the data: held out from it too."""
    files = sorted((ROOT / "rasa_project/ood").glob("*.txt"))
    assert files, "rasa_project/ood has no corpus"
    trained = {normalise(line) for path in files for line in corpus(path)}
    assert len(trained) > 10000
    for held_out in sorted((ROOT / "tests/nlu").rglob("*.yml")):
        shared = [e for e in examples(held_out) if normalise(e) in trained]
        assert shared == [], f"{held_out.name} shares {len(shared)} examples with rasa_project/ood: {shared[:5]}"


def test_every_corpus_file_the_model_trains_on_is_checked() -> None:
    config = yaml.safe_load((ROOT / "config.yml").read_text())
    detector = next(c for c in config["pipeline"] if c["name"].endswith("OutOfDomainClassifier"))
    assert detector["corpus"] and all((ROOT / name).parent == ROOT / "rasa_project/ood" for name in detector["corpus"])


def test_the_normalisation_sees_through_annotations_case_and_punctuation() -> None:
    assert normalise("Where is my order [10234](order_id)?") == normalise("where is my order 10234")
    assert normalise('book a [haircut]{"entity": "service"}!') == "book a haircut"
