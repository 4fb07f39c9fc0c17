"""How confident is the teacher? Confidence on the training texts, calibration on validation.

Reads a finished run directory: the teacher's logits of the training texts (label stage) and the
teacher itself, which it runs over the validation half (`distilrnn.bench.confidence`). Prints the
share of over-confident training predictions, expected calibration error (Guo et al. 2017) and
the temperature that minimises validation NLL, and writes everything as JSON.

    python benchmarks/teacher_confidence.py runs/sst2 --json docs/benchmarks/teacher_confidence.json
"""

from __future__ import annotations

import argparse
from pathlib import Path

from distilrnn.atomic import write_json_atomic
from distilrnn.bench.confidence import confidence_text, teacher_confidence
from distilrnn.bench.tables import run_script
from distilrnn.run import Run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    results = teacher_confidence(Run(args.run_dir), max_length=args.max_length)
    print(confidence_text(results), end="")
    if args.json:
        write_json_atomic(args.json, results)


if __name__ == "__main__":
    run_script(main)
