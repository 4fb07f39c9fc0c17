"""distilrnn: distil transformer text classifiers into small, fast LSTM/GRU students.

The library is its objects::

    import distilrnn

    task = distilrnn.load_task("data/sst2", label_names=["negative", "positive"])
    teacher = distilrnn.Teacher.finetune("sentence-transformers/all-MiniLM-L6-v2", task)
    transfer = distilrnn.augment(task.train.texts, n_iter=20, tokenizer=teacher.tokenizer)
    student = distilrnn.distill(teacher, task, transfer=transfer, objective="kl")
    student.evaluate(task.test)
    student.save_pretrained("students/sst2")
    predictor = student.export("bundles/sst2", quantize=True)

`distilrnn.Pipeline` runs the same stages with a run folder and caching around them (the CLI's
`distilrnn run`). Names load lazily: `import distilrnn` imports neither torch nor onnxruntime,
and `distilrnn.Predictor` needs only the runtime install.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from distilrnn.errors import (
    BundleError,
    ConfigError,
    DataError,
    DistilrnnError,
    MissingFileError,
    RunFolderError,
    StudentError,
    TeacherError,
)

if TYPE_CHECKING:
    from distilrnn.augmentation import augment
    from distilrnn.config import (
        AugmentSettings,
        ExportSettings,
        RunConfig,
        StudentSettings,
        TeacherConfig,
    )
    from distilrnn.config_io import load_config
    from distilrnn.data import Task, load_task
    from distilrnn.distillation import distill
    from distilrnn.ensemble import TeacherEnsemble
    from distilrnn.hub import register_offline_model
    from distilrnn.losses import register_loss
    from distilrnn.pipeline import Pipeline
    from distilrnn.run import Run
    from distilrnn.runtime import Predictor
    from distilrnn.student import RNNStudent, StudentConfig
    from distilrnn.student.model import register_cell, register_pooling
    from distilrnn.teacher import Teacher

# public name -> the module that defines it
_LAZY = {
    "AugmentSettings": "distilrnn.config",
    "ExportSettings": "distilrnn.config",
    "Pipeline": "distilrnn.pipeline",
    "Predictor": "distilrnn.runtime",
    "RNNStudent": "distilrnn.student",
    "Run": "distilrnn.run",
    "RunConfig": "distilrnn.config",
    "StudentConfig": "distilrnn.student",
    "StudentSettings": "distilrnn.config",
    "Task": "distilrnn.data",
    "Teacher": "distilrnn.teacher",
    "TeacherConfig": "distilrnn.config",
    "TeacherEnsemble": "distilrnn.ensemble",
    "augment": "distilrnn.augmentation",
    "distill": "distilrnn.distillation",
    "load_config": "distilrnn.config_io",
    "load_task": "distilrnn.data",
    "register_cell": "distilrnn.student.model",
    "register_loss": "distilrnn.losses",
    "register_offline_model": "distilrnn.hub",
    "register_pooling": "distilrnn.student.model",
}

__all__ = [
    "AugmentSettings",
    "BundleError",
    "ConfigError",
    "DataError",
    "DistilrnnError",
    "ExportSettings",
    "MissingFileError",
    "Pipeline",
    "Predictor",
    "RNNStudent",
    "Run",
    "RunConfig",
    "RunFolderError",
    "StudentConfig",
    "StudentError",
    "StudentSettings",
    "Task",
    "Teacher",
    "TeacherConfig",
    "TeacherEnsemble",
    "TeacherError",
    "augment",
    "distill",
    "load_config",
    "load_task",
    "register_cell",
    "register_loss",
    "register_offline_model",
    "register_pooling",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'distilrnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
