"""Distil SST-2 through the Python API: no config file, no run folder, objects all the way.

    SST2_DIR=../shared/data/sst2 .venv/bin/python examples/distil_sst2.py --out runs/example

Fine-tunes the teacher on a slice of the training set, builds a transfer set (Tang et al. 2019),
trains the `ce` baseline and the `kl` student on the teacher's logits, prints their accuracy
on the validation and test halves of dev.tsv, saves both students and exports the distilled
one as an int8 bundle. With the defaults (20,000 training sentences, one teacher epoch,
4 perturbed copies per sentence) it takes about half an hour on two CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import distilrnn

BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=os.environ.get("SST2_DIR"), help="SST-2 folder")
    parser.add_argument("--out", type=Path, default=Path("runs/example-sst2"))
    parser.add_argument("--train-samples", type=int, default=20_000)
    parser.add_argument("--n-iter", type=int, default=4, help="transfer-set copies a sentence")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not args.data:
        parser.error("give --data or set SST2_DIR to the SST-2 folder (GLUE TSV)")

    started = time.perf_counter()
    task = distilrnn.load_task(
        args.data,
        label_names=["negative", "positive"],
        max_train_samples=args.train_samples,
    )
    teacher = distilrnn.Teacher.finetune(
        BACKBONE, task, epochs=1, max_length=64, output_dir=args.out / "teacher"
    )
    transfer = distilrnn.augment(
        task.train.texts, n_iter=args.n_iter, tokenizer=teacher.tokenizer, seed=args.seed
    )
    common = {"max_length": 64, "epochs": 3, "seed": args.seed}
    students = {
        "ce": distilrnn.distill(teacher, task, objective="ce", **common),
        "kl": distilrnn.distill(teacher, task, transfer=transfer, objective="kl", **common),
    }
    results = {
        "train_texts": len(task.train.texts),
        "transfer_texts": len(transfer),
        "teacher": {
            "validation": teacher.evaluate(task.validation)["accuracy"],
            "test": teacher.evaluate(task.test)["accuracy"],
        },
    }
    for name, student in students.items():
        student.save_pretrained(args.out / "students" / name)
        results[name] = {
            "validation": student.evaluate(task.validation)["accuracy"],
            "test": student.evaluate(task.test)["accuracy"],
            "temperature": student.metrics["settings"]["temperature"],
        }
    predictor = students["kl"].export(args.out / "bundle", quantize=True)
    test = task.test
    bundle_logits = predictor.logits(test.texts)
    results["kl_bundle_test"] = float((bundle_logits.argmax(-1) == test.labels).mean())
    results["seconds"] = time.perf_counter() - started
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
