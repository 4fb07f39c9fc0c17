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
        cls, teacher: Any, num_labels: int | None = None, settings: Any = None, **overrides: Any
    ) -> RNNStudent:
        """A fresh student that reads with `teacher`'s tokenizer and a copy of its word
        embeddings. `teacher` is a `distilrnn.Teacher` (or a folder of one); `settings` a
        `StudentSettings`, `overrides` any of its fields (`rnn="gru"`, `hidden_size=128`)."""
        from distilrnn.config import StudentSettings
        from distilrnn.config_io import student_settings
        from distilrnn.student.build import build_student
        from distilrnn.teacher import Teacher

        if not isinstance(teacher, Teacher):
            teacher = Teacher.from_pretrained(str(teacher))
        settings = student_settings(settings or StudentSettings(), **overrides)
        student = build_student(
            settings, teacher, num_labels or teacher.num_labels, teacher.tokenizer.pad_token_id
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

    def predict_logits(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """Logits `(len(texts), num_labels)` float32 in the order of `texts`."""
        from distilrnn.distillation import logits_of_ids

        tokenizer = self._need_tokenizer()
        ids = tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]
        return logits_of_ids(self, ids, tokenizer.pad_token_id, batch_size)

    def evaluate(self, split: Any, batch_size: int = 256) -> dict[str, float]:
        """Accuracy on a labelled split: a `Task` split (`task.test`), a `datasets.Dataset`
        with `text` and `label`, or `(texts, labels)`."""
        texts, labels = _texts_and_labels(split)
        logits = self.predict_logits(texts, batch_size)
        labels = np.asarray(labels)
        return {"accuracy": float((logits.argmax(-1) == labels).mean()), "examples": len(texts)}

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


def _texts_and_labels(split: Any) -> tuple[list[str], list[int]]:
    if isinstance(split, tuple) and len(split) == 2:
        texts, labels = split
    elif hasattr(split, "texts") and hasattr(split, "labels"):
        texts, labels = split.texts, split.labels
    elif hasattr(split, "column_names"):
        texts, labels = split["text"], split["label"]
    else:
        raise StudentError("evaluate takes a task split, a datasets.Dataset or (texts, labels)")
    if labels is None or any(label < 0 for label in labels):
        raise StudentError("evaluate needs labels: this split has none")
    return list(texts), list(labels)
