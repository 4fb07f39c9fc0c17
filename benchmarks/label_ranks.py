"""Labelling with several processes: one process against `torchrun` ranks, same texts, same
teacher.

Runs the pipeline's labelling (`distilrnn.labeling.label_texts`, shards split across ranks) three
ways, each in a fresh process: 1 process x 2 threads, 1 process x 1 thread, and 2 processes x 1
thread (`torchrun --standalone --nproc_per_node 2`). Prints texts/s of each (labelling time as
the slowest rank measured it, and the wall time with process start) and compares the logits.

    python benchmarks/label_ranks.py --teacher runs/sst2/teacher/model \
        --texts ../shared/data/sst2/train.tsv --sample 20000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from distilrnn.atomic import write_json_atomic
from distilrnn.bench.throughput import sample_texts
from distilrnn.labeling import load_labelled

CHILD = """
import json, sys, time
from pathlib import Path
from datasets import Dataset
from distilrnn.distributed import rank
from distilrnn.labeling import label_texts
from distilrnn.teacher import Teacher
teacher_dir, texts_file, out, shard_size, times = sys.argv[1:]
teacher = Teacher.from_pretrained(teacher_dir, max_length=128)
dataset = Dataset.from_dict({"text": json.load(open(texts_file))})
started = time.perf_counter()
label_texts(teacher.model, teacher.tokenizer, dataset, Path(out), batch_size=512,
            shard_size=int(shard_size), max_length=128, max_tokens=8192)
Path(times, f"rank-{rank()}.json").write_text(json.dumps(time.perf_counter() - started))
"""


def _label(command: list[str], threads: int, out: Path, times: Path) -> dict[str, float]:
    times.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = time.perf_counter()
    subprocess.run([*command, str(times)], env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    labelling = max(json.loads(p.read_text()) for p in times.glob("rank-*.json"))
    return {"wall_seconds": wall, "label_seconds": labelling}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--teacher", required=True, help="fine-tuned teacher folder")
    parser.add_argument("--texts", required=True, type=Path, help="transfer set folder or TSV")
    parser.add_argument("--sample", type=int, default=20000, help="texts to label (0: all)")
    parser.add_argument("--shard-size", type=int, default=2500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    texts = sample_texts(args.texts, args.sample, args.seed)
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    ways = {
        "1 process x 2 threads": ([sys.executable], 2),
        "1 process x 1 thread": ([sys.executable], 1),
        "2 processes x 1 thread": ([torchrun, "--standalone", "--nproc_per_node", "2"], 1),
    }
    results: dict[str, dict] = {}
    logits: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="label-ranks-") as scratch:
        root = Path(scratch)
        child, texts_file = root / "child.py", root / "texts.json"
        child.write_text(CHILD)
        texts_file.write_text(json.dumps(texts))
        for index, (name, (launcher, threads)) in enumerate(ways.items()):
            out = root / f"out-{index}"
            command = [*launcher, str(child), args.teacher, str(texts_file), str(out)]
            timing = _label([*command, str(args.shard_size)], threads, out, root / f"t-{index}")
            logits[name] = np.asarray(load_labelled(out)["teacher_logits"])
            results[name] = {**timing, "texts_per_second": len(texts) / timing["label_seconds"]}
    reference = logits["1 process x 1 thread"]
    for name, values in logits.items():
        results[name]["max_abs_diff_vs_1x1"] = float(np.abs(values - reference).max())
        results[name]["identical_to_1x1"] = bool(np.array_equal(values, reference))
    summary = {"texts": len(texts), "shard_size": args.shard_size, "ways": results}
    for name, row in results.items():
        print(
            f"{name:24s} {row['texts_per_second']:8.1f} texts/s "
            f"(labelling {row['label_seconds']:.1f} s, wall {row['wall_seconds']:.1f} s); "
            f"identical to 1x1: {row['identical_to_1x1']} "
            f"(max diff {row['max_abs_diff_vs_1x1']:.2e})"
        )
    if args.json:
        write_json_atomic(args.json, summary)


if __name__ == "__main__":
    main()
