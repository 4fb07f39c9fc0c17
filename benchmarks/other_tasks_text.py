"""Unlabelled text for one task from the other tasks' training files (issue 14).

Writes one text a line, for `augment.extra_text_file`: the training sentences of every task in
the data folder but `--task` (SST-2's phrases, both sides of MRPC's and STS-B's pairs, SUBJ's
sentences, MPQA's phrases). Only `train.tsv` files are read: no dev or test text, and none of
SST-2's, MRPC's or STS-B's unlabelled test.tsv. Labels are never read. The transfer set leaves
out any line near a validation or test text of the task (`augment.extra_overlap`).

    python benchmarks/other_tasks_text.py --data ../shared/data --task subj --out subj-other.txt
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import Counter
from pathlib import Path

# task -> (columns holding text, whether the file has a header line, file encoding)
SOURCES = {
    "sst2": ([0], True, "utf-8"),
    "mrpc": ([3, 4], True, "utf-8-sig"),
    "stsb": ([7, 8], True, "utf-8"),
    "subj": ([1], False, "utf-8"),
    "mpqa": ([1], False, "utf-8"),
}


def training_texts(folder: Path, columns: list[int], header: bool, encoding: str) -> list[str]:
    path = folder / "train.tsv"
    if not path.is_file():
        raise SystemExit(f"error: {path} does not exist")
    texts = []
    with path.open(encoding=encoding, newline="") as handle:
        rows = csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)
        for number, row in enumerate(rows, start=1):
            if header and number == 1:
                continue
            if len(row) <= max(columns):
                raise SystemExit(f"error: {path}, line {number}: {len(row)} columns, expected more")
            texts.extend(" ".join(row[c].split()) for c in columns)
    return [text for text in texts if text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="the folder of the task folders")
    parser.add_argument("--task", required=True, choices=sorted(SOURCES), help="the task to feed")
    parser.add_argument("--out", type=Path, required=True, help="the text file to write (new)")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"error: {args.out} exists; choose a new file")
    seen: set[str] = set()
    counts: Counter[str] = Counter()
    lines = []
    for task, (columns, header, encoding) in SOURCES.items():
        if task == args.task:
            continue
        for text in training_texts(args.data / task, columns, header, encoding):
            if text not in seen:
                seen.add(text)
                lines.append(text)
                counts[task] += 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_name(args.out.name + ".tmp")
    partial.write_text("".join(f"{text}\n" for text in lines), encoding="utf-8")
    partial.rename(args.out)
    print(
        f"{args.out}: {len(lines):,} texts ({', '.join(f'{t} {n:,}' for t, n in counts.items())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
