"""A classifier timed beside the students, and what it costs: the `Peer` type (bytes, accuracy on
the validation and test halves, latency and throughput), and the run's teacher and students
exported as bundles run by `Predictor` (onnxruntime), as peers. The peers trained from scratch
are in `distilrnn.bench.trained_peers`; the benchmark that sets them side by side in
`distilrnn.bench.peers`.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distilrnn.errors import ConfigError, DataError
from distilrnn.timing import latency_ms

if TYPE_CHECKING:
    from distilrnn.config import ExportSettings
    from distilrnn.data import Split, Task
    from distilrnn.run import Run

REFERENCE = "teacher-onnx-int8"
THREADS = (1, 2)

Classify = Callable[[Sequence[str]], np.ndarray]  # texts -> (n,) label ids


def _no_limit(threads: int) -> AbstractContextManager:
    return contextlib.nullcontext()


@dataclass
class Peer:
    """A trained classifier and what it costs: `classifier(threads)` gives `texts -> label ids`
    on that many threads (`limit_threads(threads)` is held around every call); `model_bytes`
    is everything it needs to classify raw text (a bundle: its files; TF-IDF: vocabulary and
    weights; fastText: its `.bin`). `search` holds every candidate's validation accuracy and
    `chosen` the hyper-parameters kept."""

    name: str
    kind: str  # "peer", "teacher" or "student"
    runtime: str  # the library and its version
    classifier: Callable[[int], Classify]
    model_bytes: int
    limit_threads: Callable[[int], AbstractContextManager] = _no_limit
    threads_note: str = ""
    chosen: dict[str, Any] = field(default_factory=dict)
    search: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float | None = None
    validation_accuracy: float | None = None
    test_accuracy: float | None = None
    speed: dict[str, Any] | None = None

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Label ids `(len(texts),)` int64, on one thread."""
        with self.limit_threads(1):
            return np.asarray(self.classifier(1)(list(texts)), dtype=np.int64)

    def evaluate(self, task: Task) -> Peer:
        """Accuracy on the validation and test halves (the test half's one read); returns self."""
        for name in ("validation", "test"):
            texts, labels = labelled(task.split(name))
            setattr(self, f"{name}_accuracy", accuracy(self.predict(texts), labels))
        return self

    def time(
        self,
        texts: Sequence[str],
        *,
        latency_texts: int = 200,
        repeats: int = 3,
        threads: Sequence[int] = THREADS,
    ) -> dict[str, Any]:
        """Latency (ms, one text a call, one thread, over the first `latency_texts`) and
        throughput (texts/s, batches of 64 in the given order, best of `repeats`) at each of
        `threads`, with the helpers that time the bundles; kept in `speed`."""
        from distilrnn.bench.bundles import best_throughput

        texts = list(texts)
        with self.limit_threads(1):
            classify = self.classifier(1)
            latency = latency_ms(lambda text: classify([text]), texts[:latency_texts], warmup=10)
        throughput = {}
        for count in threads:
            with self.limit_threads(count):
                throughput[str(count)] = best_throughput(self.classifier(count), texts, repeats)
        self.speed = {"latency_ms": latency, "throughput_texts_per_s": throughput}
        return self.speed

    def record(self) -> dict[str, Any]:
        """The JSON-ready row of peers.json."""
        return {
            "name": self.name,
            "kind": self.kind,
            "runtime": self.runtime,
            "model_bytes": self.model_bytes,
            "validation_accuracy": self.validation_accuracy,
            "test_accuracy": self.test_accuracy,
            "chosen": self.chosen,
            "search": self.search,
            "train_seconds": self.train_seconds,
            "threads_note": self.threads_note,
            "speed": self.speed,
        }


# shared helpers --------------------------------------------------------------------------------
def labelled(split: Split) -> tuple[list[str], np.ndarray]:
    """Texts and label ids `(n,)` of a labelled single-text split."""
    if split.text_pairs is not None:
        raise DataError(f"the {split.name} split holds sentence pairs; the peers read one text")
    if split.labels is None or not len(split):
        raise DataError(f"the {split.name} split has no labelled rows to train or score peers on")
    return list(split.texts), np.asarray(split.labels, dtype=np.int64)


def accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(predicted) == np.asarray(labels)).mean())


def installed_version(module: str) -> str:
    """`distribution version` of the installed package that provides `module`."""
    names = importlib.metadata.packages_distributions().get(module) or [module]
    return f"{names[0]} {importlib.metadata.version(names[0])}"


def check_task(task: Task) -> None:
    if task.is_regression or task.is_pair:
        raise ConfigError(
            "the peers are single-text classifiers; this task is "
            f"{'a regression' if task.is_regression else 'of sentence pairs'}"
        )


# bundles: the teacher and students --------------------------------------------------------------
def bundle_peer(name: str, kind: str, bundle_dir: Path) -> Peer:
    """A bundle run by `Predictor` (batches of 64, the given intra-op threads)."""
    from distilrnn.bench.bundles import BATCH_SIZE
    from distilrnn.export import file_bytes
    from distilrnn.runtime import Predictor

    def classifier(threads: int) -> Classify:
        predictor = Predictor(bundle_dir, batch_size=BATCH_SIZE, threads=threads)
        return lambda texts: predictor.logits(texts).argmax(axis=-1)

    return Peer(
        name=name,
        kind=kind,
        runtime=installed_version("onnxruntime"),
        classifier=classifier,
        model_bytes=sum(file_bytes(Path(bundle_dir)).values()),
        chosen={"bundle_dir": str(bundle_dir)},
    )


def teacher_peers(run: Run, work_dir: Path) -> list[Peer]:
    """The run's teacher exported as two bundles under `work_dir` (float32, and int8 by
    onnxruntime's dynamic quantisation), not yet scored."""
    from distilrnn.export import export_teacher_bundle

    teacher = run.teacher()
    peers = []
    for name, quantize in (("teacher-onnx-fp32", False), (REFERENCE, True)):
        export_teacher_bundle(
            teacher.model_dir,
            work_dir / name,
            labels=run.label_names(),
            max_length=int(teacher.settings.get("max_length", 128)),
            quantize=quantize,
        )
        peers.append(bundle_peer(name, "teacher", work_dir / name))
    return peers


def student_peer(run: Run, variant: str, work_dir: Path, settings: ExportSettings) -> Peer:
    """The lowest trained seed of `variant` exported with `settings` (the config's `[export]`)
    under `work_dir`, not yet scored."""
    from distilrnn.export import export_student

    summary = export_student(
        run.root, work_dir / f"student-{variant}", settings, variant=variant, seed=None
    )
    peer = bundle_peer(f"student-{variant}", "student", Path(summary["bundle_dir"]))
    peer.chosen["export"] = summary["compression"]
    return peer
