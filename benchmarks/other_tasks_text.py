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
import sys
from collections import Counter
from pathlib import Path

from distilrnn.atomic import write_atomically
from distilrnn.errors import DataError
from distilrnn.readers import read_delimited

# task -> (the columns holding text: header names, or 0-based positions without a header line)
SOURCES = {
    "sst2": ("sentence",),
    "mrpc": ("#1 String", "#2 String"),
    "stsb": ("sentence1", "sentence2"),
    "subj": ("1",),
    "mpqa": ("1",),
}


def training_texts(path: Path, columns: tuple[str, ...]) -> list[str]:
    """The texts of `columns` in a training file, spaces collapsed, empty ones left out."""
    header = not all(column.isdigit() for column in columns)
    rows = read_delimited(path, "\t", False, columns, header=header)
    texts = (" ".join(text.split()) for _, values in rows for text in values)
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
    for task, columns in SOURCES.items():
        if task == args.task:
            continue
        path = args.data / task / "train.tsv"
        if not path.is_file():
            raise SystemExit(f"error: {path} does not exist")
        try:
            texts = training_texts(path, columns)
        except DataError as error:
            raise SystemExit(f"error: {error}") from None
        for text in texts:
            if text not in seen:
                seen.add(text)
                lines.append(text)
                counts[task] += 1
    body = "".join(f"{text}\n" for text in lines)
    write_atomically(args.out, lambda tmp: tmp.write_text(body, encoding="utf-8"))
    print(
        f"{args.out}: {len(lines):,} texts ({', '.join(f'{t} {n:,}' for t, n in counts.items())})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
