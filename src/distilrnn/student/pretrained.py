"""A student as a library object: built from a teacher, saved and loaded the Hub's way
(`save_pretrained` / `from_pretrained` / `push_to_hub`), evaluated, exported as a bundle.

A student folder holds `model.safetensors` and `config.json` (the architecture), the tokenizer
it reads with (the teacher's), `labels.json` (label names in logit order) and `metrics.json`
(how it was trained and what it scored) — the same folder the pipeline writes, so a student of
a run and one saved from Python load alike.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distilrnn.atomic import replace_directory, write_json_atomic
from distilrnn.errors import MissingFileError, StudentError
from distilrnn.inputs import PAIR_COLUMN, SINGLE, Input, encode_student, split_inputs
from distilrnn.metrics import CLASSIFICATION, DEFAULT_METRICS, scores
from distilrnn.records import METRICS_NAME, STAGE_FILE, read_json

if TYPE_CHECKING:
    from distilrnn.runtime import Predictor
    from distilrnn.student.model import RNNStudent

logger = logging.getLogger(__name__)

LABELS_NAME = "labels.json"
STUDENT_FILES = ("model.safetensors", "config.json")


class PretrainedMixin:
    """`RNNStudent`'s library methods. The student carries `tokenizer` (a transformers fast
    tokenizer), `label_names` and `metrics` beside its weights once trained or loaded."""

    tokenizer: Any = None
    label_names: list[str] | None = None
    metrics: dict[str, Any] | None = None

    # building ---------------------------------------------------------------------------------
    @classmethod
    def from_teacher(
        cls,
        teacher: Any,
        num_labels: int | None = None,
        settings: Any = None,
        *,
        pair_design: str = "none",
        task_type: str = "classification",
        **overrides: Any,
    ) -> RNNStudent:
        """A fresh student that reads with `teacher`'s tokenizer and a copy of its word
        embeddings. `teacher` is a `distilrnn.Teacher` (or a folder of one); `settings` a
        `StudentSettings`, `overrides` any of its fields (`rnn="gru"`, `hidden_size=128`);
        `pair_design` ("none" | "joint" | "siamese") and `task_type` ("classification" |
        "regression") as in `StudentConfig`."""
        from distilrnn.config import StudentSettings
        from distilrnn.config_io import student_settings
        from distilrnn.student.build import build_student
        from distilrnn.teacher import Teacher

        if not isinstance(teacher, Teacher):
            teacher = Teacher.from_pretrained(str(teacher))
        settings = student_settings(settings or StudentSettings(), **overrides)
        student = build_student(
            settings,
            teacher,
            num_labels or teacher.num_labels,
            teacher.tokenizer.pad_token_id,
            pair_design=pair_design,
            task_type=task_type,
        )
        student.tokenizer = teacher.tokenizer
        student.label_names = teacher.label_names
        return student

    # saving and loading ---------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the student folder (weights, config, tokenizer, labels, metrics), replacing a
        student saved there before; a folder that holds anything else is refused."""
        directory = Path(directory)
        occupied = directory.exists() and any(directory.iterdir())
        if occupied and not all((directory / name).is_file() for name in STUDENT_FILES):
            raise StudentError(
                f"{directory} holds files but no saved student: choose an empty or new folder"
            )
        if (directory / STAGE_FILE).is_file():
            raise StudentError(
                f"{directory} is a finished stage of a run (it has {STAGE_FILE}); replacing it "
                "would unmake that stage: save to another folder"
            )
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
        try:
            self.save(tmp)
            if self.tokenizer is not None:
                self.tokenizer.save_pretrained(str(tmp))
            if self.label_names:
                write_json_atomic(tmp / LABELS_NAME, {"names": list(self.label_names)})
            if self.metrics:
                write_json_atomic(tmp / METRICS_NAME, self.metrics)
            replace_directory(tmp, directory)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, *, revision: str | None = None, device: str = "cpu"
    ) -> RNNStudent:
        """A student from a folder (written by `save_pretrained` or the pipeline) or a Hub
        repository id (downloaded with `huggingface_hub.snapshot_download`)."""
        directory = Path(name_or_path).expanduser()
        if not directory.is_dir():
            if str(name_or_path).count("/") != 1 or Path(name_or_path).is_absolute():
                raise MissingFileError(f"no student folder at {name_or_path}")
            from huggingface_hub import snapshot_download

            try:
                directory = Path(snapshot_download(str(name_or_path), revision=revision))
            except (OSError, ValueError) as error:  # the hub's errors derive from these
                raise MissingFileError(
                    f"no student folder at {name_or_path}, nor a Hub repository: {error}"
                ) from None
        student = cls.load(directory, device=device)
        if (directory / "tokenizer.json").is_file():
            from transformers import AutoTokenizer

            student.tokenizer = AutoTokenizer.from_pretrained(str(directory))
        labels = directory / LABELS_NAME
        if labels.is_file():
            from distilrnn.runtime import read_label_names

            student.label_names = read_label_names(labels)
        else:  # a student of a run: its labels live in the run's data stage
            from distilrnn.run import Run

            run = Run.of_student(directory)
            student.label_names = run.label_names() if run else None
        metrics = directory / METRICS_NAME
        student.metrics = read_json(metrics) if metrics.is_file() else None
        return student

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = False,
        token: str | None = None,
        commit_message: str = "Upload distilrnn student",
        api: Any = None,
    ) -> Any:
        """Upload the student folder to a Hub repository (created if missing) through
        `huggingface_hub.HfApi`; `api` replaces that client (e.g. for another endpoint)."""
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(Path(tmp) / "student")
            api.create_repo(repo_id, private=private, exist_ok=True)
            return api.upload_folder(
                repo_id=repo_id, folder_path=str(folder), commit_message=commit_message
            )

    # using it -------------------------------------------------------------------------------
    def _need_tokenizer(self) -> Any:
        if self.tokenizer is None:
            raise StudentError(
                "this student has no tokenizer: build it with RNNStudent.from_teacher, distil "
                "it with distilrnn.distill, or load it with RNNStudent.from_pretrained"
            )
        return self.tokenizer

    @property
    def max_length(self) -> int:
        """Tokens per text it trained on (128 when unknown)."""
        return int(((self.metrics or {}).get("settings") or {}).get("max_length") or 128)

    def predict_logits(self, texts: Sequence[Input], batch_size: int = 256) -> np.ndarray:
        """Logits `(len(texts), num_labels)` float32 (regression: `(n, 1)` predicted scores)
        in the order of `texts`: strings, or `(text, text_pair)` tuples for a pair student."""
        from distilrnn.batching import run_batched_pairs
        from distilrnn.distillation import logits_of_ids

        tokenizer = self._need_tokenizer()
        try:
            first, second = split_inputs(texts)
        except ValueError as error:
            raise StudentError(str(error)) from None
        design = self.config.pair_design
        if (second is None) != (design == SINGLE):
            wanted = "single texts" if design == SINGLE else "(text, text_pair) pairs"
            raise StudentError(f"this student (pair_design {design!r}) reads {wanted}")
        ids = encode_student(tokenizer, first, second, self.max_length, design)
        if "pair_input_ids" not in ids:
            return logits_of_ids(self, ids["input_ids"], tokenizer.pad_token_id, batch_size)
        self.eval()
        device = next(self.parameters()).device

        def call(*arrays: np.ndarray) -> np.ndarray:
            import torch

            with torch.no_grad():
                logits = self(*(torch.from_numpy(a).to(device) for a in arrays))
            return logits.float().cpu().numpy()

        return run_batched_pairs(
            ids["input_ids"],
            ids["pair_input_ids"],
            call,
            self.config.num_labels,
            pad_id=tokenizer.pad_token_id,
            batch_size=batch_size,
        )

    def evaluate(self, split: Any, batch_size: int = 256) -> dict[str, float]:
        """The task's metrics on a labelled split: a `Task` split (`task.test`), a
        `datasets.Dataset` with `text` (and `text_pair`) and `label`, or `(inputs, labels)`.
        Classification gives `accuracy` (and `f1` when the task scores it), regression
        `pearson` and `spearman`; `examples` is the number of rows."""
        inputs, labels = _texts_and_labels(split, self.config.task_type)
        logits = self.predict_logits(inputs, batch_size)
        names = list(getattr(split, "metrics", None) or DEFAULT_METRICS[self.config.task_type])
        if self.config.task_type == CLASSIFICATION and "accuracy" not in names:
            names.append("accuracy")
        measured = scores(names, logits, labels, self.config.task_type)
        return {**measured, "examples": len(inputs)}

    def export(self, output_dir: str | Path, settings: Any = None, **overrides: Any) -> Predictor:
        """Export the student as a bundle (see `distilrnn.export`) and return a `Predictor`
        on it. `overrides` are `ExportSettings` fields: `quantize=True`, `embedding_rank=96`..."""
        from distilrnn.config import ExportSettings
        from distilrnn.export import export_bundle
        from distilrnn.runtime import Predictor
        from distilrnn.validation import settings_with

        tokenizer = self._need_tokenizer()
        settings = settings_with(settings or ExportSettings(), "export", **overrides)
        if not self.label_names and not settings.labels:
            raise StudentError("no label names: set student.label_names or pass labels=[...]")
        export_bundle(
            self,
            tokenizer.backend_tokenizer,
            output_dir,
            settings,
            labels=list(settings.labels or self.label_names),
            metrics=self.metrics or {},
        )
        return Predictor(output_dir)


def _texts_and_labels(split: Any, task_type: str) -> tuple[list[Any], list[float]]:
    pairs = None
    if isinstance(split, tuple) and len(split) == 2:
        texts, labels = split
    elif hasattr(split, "texts") and hasattr(split, "labels"):
        texts, labels = split.texts, split.labels
        pairs = getattr(split, "text_pairs", None)
    elif hasattr(split, "column_names"):
        texts, labels = split["text"], split["label"]
        if PAIR_COLUMN in split.column_names:
            pairs = split[PAIR_COLUMN]
    else:
        raise StudentError("evaluate takes a task split, a datasets.Dataset or (inputs, labels)")
    if task_type == CLASSIFICATION:
        unlabelled = labels is None or any(label < 0 for label in labels)
    else:
        unlabelled = labels is None or any(np.isnan(float(label)) for label in labels)
    if unlabelled:
        raise StudentError("evaluate needs labels: this split has none")
    inputs = list(texts) if pairs is None else list(zip(texts, pairs, strict=True))
    return inputs, list(labels)
