"""`make bench-judging`: what judging the probe's answers costs (drills/answers.py).

With model checks, every probe answer is parsed for its label (`probe.first_label`), judged
against the baseline when the timeline files it (`AnswerKey.correct`), and each step's
window is measured once at its end (`measure_answers`: wrong answer ratio, time to correct
answers). Measured here on synthetic samples, no sandbox needed:

1. per answer: the label parsed from a /predict body and the judgement, in microseconds;
2. per step: `measure_answers` over a window of 20 requests/s for 60 s and for an hour
   (72,000 samples, the probe's longest realistic step), in milliseconds.

Writes bench/results/judging.json and prints the figures.
"""

from __future__ import annotations

import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from modeldr.drills.answers import AnswerKey, measure_answers
from modeldr.drills.probe import first_label
from modeldr.drills.probe_stats import ProbeSample

RESULTS = Path(__file__).resolve().parent / "results" / "judging.json"
LABELS = ("positive", "negative")
GOLDEN = 48
RATE = 20.0


def samples(seconds: float, rng: random.Random) -> list[ProbeSample]:
    """RATE per second; a tenth failed, a tenth answered otherwise than the baseline."""
    out = []
    for i in range(int(seconds * RATE)):
        index = i % GOLDEN
        roll = rng.random()
        label = LABELS[index % 2] if roll >= 0.1 else LABELS[(index + 1) % 2]
        ok = roll >= 0.05
        out.append(
            ProbeSample(
                i / RATE,
                0.02,
                ok,
                "standby",
                None if ok else "timeout",
                index,
                label if ok else None,
            )
        )
    return out


def per_answer(key: AnswerKey, rounds: int) -> float:
    """Microseconds to parse one answer's label and judge it."""
    body = json.loads(
        json.dumps(
            {
                "model": "tiny-bert",
                "version": "1",
                "predictions": [
                    {
                        "label": "positive",
                        "score": 0.93,
                        "probabilities": {"negative": 0.07, "positive": 0.93},
                    }
                ],
            }
        )
    )
    started = time.perf_counter()
    for i in range(rounds):
        label = first_label(body)
        key.correct(ProbeSample(0.0, 0.02, True, "standby", None, i % GOLDEN, label))
    return (time.perf_counter() - started) / rounds * 1e6


def per_window(key: AnswerKey, window: list[ProbeSample], rounds: int) -> float:
    """Milliseconds for one step's measurement over `window`."""
    end = window[-1].sent_at + 1
    started = time.perf_counter()
    for _ in range(rounds):
        measure_answers(key, window, 0.0, end, 0.99)
    return (time.perf_counter() - started) / rounds * 1e3


def main() -> int:
    rng = random.Random(0)
    key = AnswerKey([LABELS[i % 2] for i in range(GOLDEN)])
    key.set_baseline([LABELS[i % 2] for i in range(GOLDEN)])
    minute, hour = samples(60, rng), samples(3600, rng)
    results: dict[str, Any] = {
        "benchmark": "judging",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "per_answer_us": round(per_answer(key, 200_000), 2),
        "per_step_ms": {
            "60 s at 20/s (1,200 samples)": round(per_window(key, minute, 50), 2),
            "3600 s at 20/s (72,000 samples)": round(per_window(key, hour, 3), 1),
        },
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    print(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
