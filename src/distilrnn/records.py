"""The typed records of a run folder's stages: a teacher's and a student's metrics and
settings, their saved validation / test logits, and text sources. `distilrnn.run.Run` hands
them out; a student folder outside a run reads the same way."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from distilrnn.atomic import write_json_atomic
from distilrnn.errors import MissingFileError, RunFolderError

if TYPE_CHECKING:
    import numpy as np

STAGE_FILE = "stage.json"
METRICS_NAME = "metrics.json"
PREDICTIONS_NAME = "predictions.json"


def read_json(path: Path) -> Any:
    """A JSON file's content; a missing file or corrupt JSON is a user-facing error."""
    if not path.is_file():
        raise MissingFileError(f"{path} not found")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path} is corrupt: {error}") from None


class _Scored:
    """What every model record reads the same way: its accuracy and its saved logits."""

    directory: Path
    metrics: dict[str, Any]

    @property
    def validation_accuracy(self) -> float | None:
        return self.metrics.get("validation_accuracy")

    @property
    def test_accuracy(self) -> float | None:
        return self.metrics.get("test_accuracy")

    @property
    def metric_names(self) -> list[str]:
        """The metrics the model was scored by (records before pairs and regression: accuracy)."""
        return list(self.metrics.get("metrics", ["accuracy"]))

    def score(self, split: str, metric: str) -> float | None:
        """One metric on one split (`validation` / `test`), None when not recorded."""
        return self.metrics.get(f"{split}_{metric}")

    def predictions(self) -> dict[str, np.ndarray] | None:
        return load_predictions(self.directory)


@dataclass
class TeacherRecord(_Scored):
    """A finished teacher stage: its checkpoint folder and its metrics."""

    directory: Path
    metrics: dict[str, Any]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def model_dir(self) -> Path:
        return self.directory / "model"

    @property
    def name(self) -> str | None:
        """The backbone or checkpoint the teacher came from."""
        return self.settings.get("checkpoint") or self.settings.get("model")

    @classmethod
    def read(cls, directory: Path) -> TeacherRecord:
        stage = directory / STAGE_FILE
        settings = read_json(stage).get("settings", {}) if stage.is_file() else {}
        metrics_path = directory / METRICS_NAME
        metrics = read_json(metrics_path) if metrics_path.is_file() else {}
        return cls(directory, metrics, settings)


@dataclass
class StudentRecord(_Scored):
    """A finished student: its folder, the settings it trained with and its metrics."""

    directory: Path
    metrics: dict[str, Any]

    @property
    def variant(self) -> str:
        return self.metrics.get("variant") or self.directory.parent.name

    @property
    def seed(self) -> int:
        """Its seed: from its metrics, else its folder name (`seed-<n>`), else 0."""
        name = self.directory.name.removeprefix("seed-")
        return int(self.metrics.get("seed", name if name.isdigit() else 0))

    @property
    def settings(self) -> dict[str, Any]:
        return self.metrics.get("settings", {})

    @property
    def objective(self) -> str:
        return self.settings.get("objective", "ce")

    @property
    def max_length(self) -> int | None:
        return self.settings.get("max_length")

    @property
    def trained_on_transfer_set(self) -> bool:
        """Whether the student read the augmented transfer set (`TRANSFER_SET_RULE`)."""
        return self.objective != "ce" and self.settings.get("transfer_set") == "augmented"

    @classmethod
    def read(cls, directory: Path) -> StudentRecord:
        path = directory / METRICS_NAME
        return cls(directory, read_json(path) if path.is_file() else {})


def save_predictions(directory: Path, logits: dict[str, np.ndarray]) -> None:
    """Write a model's logits per split, `{split: (n_examples, num_labels)}`, to
    `directory/predictions.json` (atomically), for per-example statistics later."""
    import numpy as np

    write_json_atomic(
        Path(directory) / PREDICTIONS_NAME,
        {split: np.asarray(values, dtype=np.float32).tolist() for split, values in logits.items()},
        indent=None,
    )


def load_predictions(directory: Path) -> dict[str, np.ndarray] | None:
    """The logits `save_predictions` wrote, or None when the folder has none."""
    import numpy as np

    path = Path(directory) / PREDICTIONS_NAME
    if not path.is_file():
        return None
    return {
        split: np.asarray(values, dtype=np.float32) for split, values in read_json(path).items()
    }


def read_texts(source: str | Path) -> list[str]:
    """Texts from a text file (one a line, blank lines skipped) or a `datasets` folder with a
    `text` column."""
    path = Path(source)
    if path.is_dir():
        from datasets import Dataset

        dataset = Dataset.load_from_disk(str(path))
        if "text" not in dataset.column_names:
            raise RunFolderError(f"{path} has no `text` column (columns: {dataset.column_names})")
        return list(dataset["text"])
    if not path.is_file():
        raise MissingFileError(f"text source not found: {path}")
    with path.open(encoding="utf-8") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]
