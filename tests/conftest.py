"""Tiny fixtures: a word-level BERT teacher built from a config, and SST-2-shaped TSV files."""

from __future__ import annotations

import json
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


def build_tiny_teacher(directory: Path, num_labels: int = 2, with_head: bool = True) -> Path:
    """A 2-layer, hidden-32 BERT classifier with a word-level vocabulary, saved to `directory`;
    `with_head=False` saves the backbone alone, whose classification head is drawn at load."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    build_tiny_tokenizer(directory)  # word-level: every fixture word is its own token
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
    model = BertForSequenceClassification(config) if with_head else BertModel(config)
    model.save_pretrained(str(directory))
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


def build_tiny_tokenizer(directory: Path) -> Path:
    """A lower-casing word-level WordPiece tokenizer over `VOCAB` with BERT's [CLS] ... [SEP]
    template, saved by transformers to `directory` (tokenizer.json and its config)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordPiece({t: i for i, t in enumerate(VOCAB)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls_id, sep_id = VOCAB.index("[CLS]"), VOCAB.index("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.add_special_tokens(SPECIAL)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(str(directory))
    return directory


def build_tiny_student(directory: Path, seed: int = 0, max_length: int = 16, **config) -> Path:
    """A randomly initialised `RNNStudent` over `VOCAB` saved as `distilrnn student` saves one:
    weights, config, tokenizer and metrics.json. `config` overrides `StudentConfig` fields."""
    from distilrnn.student import RNNStudent, StudentConfig

    values = {
        "vocab_size": len(VOCAB),
        "embedding_dim": 12,
        "num_labels": 2,
        "hidden_size": 10,
        "head_hidden_size": 8,
        "padding_idx": VOCAB.index("[PAD]"),
        **config,
    }
    torch.manual_seed(seed)
    RNNStudent(StudentConfig(**values)).save(directory)
    build_tiny_tokenizer(directory)
    metrics = {
        "variant": "tiny",
        "seed": seed,
        "validation_accuracy": 0.5,
        "test_accuracy": 0.5,
        "settings": {"max_length": max_length, "objective": "kl", "temperature": 2.0},
    }
    (directory / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return directory
