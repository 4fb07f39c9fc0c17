"""Tiny fixtures: a word-level BERT teacher built from a config, and SST-2-shaped TSV files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

POSITIVE = ["good", "great", "fun", "moving", "brilliant", "charming"]
NEGATIVE = ["bad", "dull", "boring", "awful", "weak", "tedious"]
FILLER = ["the", "film", "is", "a", "movie", "story", "very", "and", "plot", "it", "'s", "quite"]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
VOCAB = SPECIAL + POSITIVE + NEGATIVE + FILLER


def make_sentences(count: int, seed: int) -> list[tuple[str, int]]:
    """Sentences whose label is the polarity of their one sentiment word."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        label = rng.randint(0, 1)
        words = rng.sample(FILLER, rng.randint(1, 6))
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if label else NEGATIVE))
        rows.append((" ".join(words), label))
    return rows


def write_tsv(path: Path, rows: list[tuple[str, int]] | list[tuple[str, str]]) -> Path:
    lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def build_tiny_teacher(directory: Path, num_labels: int = 2) -> Path:
    """A 2-layer, hidden-32 BERT classifier with a word-level vocabulary, saved to `directory`."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=num_labels,
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(directory))
    tokenizer.save_pretrained(str(directory))
    return directory


@pytest.fixture(scope="session")
def tiny_teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_teacher(tmp_path_factory.mktemp("tiny-teacher"))


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    """An SST-2-shaped folder: train.tsv (48 rows) and dev.tsv (24 rows, halved into val/test)."""
    folder = tmp_path / "task"
    folder.mkdir()
    write_tsv(folder / "train.tsv", make_sentences(48, seed=1))
    write_tsv(folder / "dev.tsv", make_sentences(24, seed=2))
    return folder


def tiny_run_overrides(task_dir: Path, teacher_dir: Path, run_dir: Path) -> list[str]:
    """`--set` overrides that make a whole run take seconds on the tiny fixtures."""
    return [
        f'run_dir="{run_dir}"',
        f'data.path="{task_dir}"',
        f'teacher.model="{teacher_dir}"',
        "teacher.epochs=1",
        "teacher.batch_size=16",
        "teacher.max_length=16",
        "teacher.learning_rate=1e-3",
        "student.epochs=2",
        "student.hidden_size=16",
        "student.head_hidden_size=16",
        "student.batch_size=16",
        "student.max_length=16",
    ]
