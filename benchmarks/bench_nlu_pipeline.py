"""What the NLU pipeline costs a message, one model against another, side by side in one run.

Loads two trained models in this process (Rasa's Python) and parses the same messages with each,
alternating rounds so that whatever else the machine does weighs on both alike. Reports CPU per
parse (process time, which other load barely moves) and wall-clock per parse, and the ratio.
Used to price the out-of-domain detector and the workflow fallback: the model before them against
the current one.

Usage (from the repository root):
    PYTHONPATH=. .venv-rasa/bin/python benchmarks/bench_nlu_pipeline.py models/reviewbot-OLD.tar.gz \\
        models/current.tar.gz [--mix benchmarks/mixes/customers.txt] [--rounds 5] [--repeat 40]

The mix is the customer mix `make bench` uses plus the out-of-domain development set, so the
detector's rejections are priced too.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")


def messages(mix: Path, extra: Path | None) -> list[str]:
    lines = [line.strip() for line in mix.read_text().splitlines()]
    found = [line for line in lines if line and not line.startswith("#")]
    if extra is not None:
        from rasa.shared.nlu.training_data.loading import load_data

        found += [example.get("text") for example in load_data(str(extra)).intent_examples][:40]
    return found


async def timed(agent, texts: list[str], repeat: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per parse over `repeat` passes of `texts`."""
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            await agent.parse_message(text)
    count = repeat * len(texts)
    return (time.process_time() - cpu) / count, (time.perf_counter() - wall) / count


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--mix", type=Path, default=ROOT / "benchmarks/mixes/customers.txt")
    parser.add_argument("--ood", type=Path, default=ROOT / "tests/nlu/ood/ood_dev.yml")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=4)
    args = parser.parse_args()

    import structlog
    from rasa.core.agent import Agent

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    texts = messages(args.mix, args.ood)
    agents = {"before": Agent.load(str(args.before)), "after": Agent.load(str(args.after))}
    for agent in agents.values():  # warm up: first parses build TensorFlow's graphs
        await timed(agent, texts[:5], 2)
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in agents}
    for _ in range(args.rounds):
        for name, agent in agents.items():
            figures[name].append(await timed(agent, texts, args.repeat))
    print(f"{len(texts)} messages x {args.repeat} x {args.rounds} rounds, alternating")
    medians = {}
    for name, runs in figures.items():
        cpu = statistics.median(run[0] for run in runs) * 1000
        wall = statistics.median(run[1] for run in runs) * 1000
        medians[name] = (cpu, wall)
        print(f"  {name:6} {Path(getattr(args, name)).name}: CPU {cpu:.2f} ms/parse, wall {wall:.2f} ms/parse")
    ratio_cpu = medians["after"][0] / medians["before"][0]
    ratio_wall = medians["after"][1] / medians["before"][1]
    print(f"  after / before: CPU {ratio_cpu:.2f}x, wall {ratio_wall:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
