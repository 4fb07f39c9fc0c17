"""Peers on the same data: what a user would deploy instead of a distilled student.

    tfidf-logreg       scikit-learn: TF-IDF of word 1-2 grams + logistic regression, `C` chosen
                       on the validation half
    fasttext           fastText supervised with word bigrams, epochs and learning rate chosen on
                       the validation half (Joulin et al. 2017)
    teacher-onnx-fp32  the fine-tuned teacher as a bundle run by `Predictor` (onnxruntime)
    teacher-onnx-int8  the same after onnxruntime's dynamic int8 quantisation: the honest speed
                       baseline, which every speed ratio is taken against

The peers train on the run's training split only; their hyper-parameters are chosen on the
validation half (`select_tfidf` and `select_fasttext` are never given the test half), and the
test half is read once, to report. Every model is timed as the bundles are
(`distilrnn.bench.bundles`): one-sentence latency p50 / p90 on one thread over the first
`latency_texts` test texts, and throughput in batches of 64 in test order at 1 and 2 threads,
best of `repeats`; tokenisation (or vectorisation) included.

Threads: onnxruntime runs on `threads` intra-op threads. scikit-learn is limited through
threadpoolctl, but its TF-IDF transform is Python and its sparse decision function runs on one
thread; fastText's predict runs one thread per call. Their 2-thread rows use one core, and say so.

The peers need `pip install 'distilrnn[peers]'`: scikit-learn, and fastText from the
`fasttext-community` wheel. The `fasttext` 0.9.3 release builds from source and fails under
numpy 2, and the `fasttext-numpy2` and `fasttext-modern` wheels train on uninitialised memory:
the same seed gives another model, or a NaN, once the process has allocated and freed enough
(tests/test_peers.py checks the installed one). A peer whose package is missing is skipped with
a line saying what to install.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distilrnn.errors import ConfigError, DataError
from distilrnn.timing import latency_ms, time_calls

if TYPE_CHECKING:
    from distilrnn.config import ExportSettings
    from distilrnn.data import Split, Task
    from distilrnn.run import Run

logger = logging.getLogger(__name__)

PEERS_NAME = "peers.json"  # in the run folder; the report plots it when it is there
REFERENCE = "teacher-onnx-int8"
PEERS = ("tfidf-logreg", "fasttext")
# name -> (module, distribution to install)
DEPENDENCIES = {
    "tfidf-logreg": ("sklearn", "scikit-learn"),
    "fasttext": ("fasttext", "fasttext-community"),
}
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
EPOCHS_GRID = (5, 10, 25)
LEARNING_RATES = (0.1, 0.5, 1.0)
THREADS = (1, 2)
FASTTEXT_LABEL = "__label__"
ONE_THREAD = {
    "tfidf-logreg": "one core: the TF-IDF transform is Python, the sparse product scipy's",
    "fasttext": "one core: fastText's predict runs one thread per call",
}

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


def missing_dependency(name: str) -> str | None:
    """Why peer `name` cannot run here (its package is not installed), or None."""
    module, distribution = DEPENDENCIES[name]
    if importlib.util.find_spec(module) is not None:
        return None
    return (
        f"the {name} peer needs the {module!r} module: pip install 'distilrnn[peers]' "
        f"(or {distribution})"
    )


def _require(name: str) -> None:
    reason = missing_dependency(name)
    if reason is not None:
        raise ConfigError(reason)


def _version(module: str) -> str:
    """`distribution version` of the installed package that provides `module`."""
    names = importlib.metadata.packages_distributions().get(module) or [module]
    return f"{names[0]} {importlib.metadata.version(names[0])}"


def _seconds(call: Callable[[], Any]) -> tuple[Any, float]:
    """`call()`'s result and its wall seconds (`distilrnn.timing`, no warm-up)."""
    result: list[Any] = []
    (seconds,) = time_calls(lambda _: result.append(call()), [None], warmup=0)
    return result[0], float(seconds)


def _check_task(task: Task) -> None:
    if task.is_regression or task.is_pair:
        raise ConfigError(
            "the peers are single-text classifiers; this task is "
            f"{'a regression' if task.is_regression else 'of sentence pairs'}"
        )


# TF-IDF + logistic regression -----------------------------------------------------------------
def tfidf_bytes(vectorizer: Any, model: Any) -> int:
    """Bytes of the vocabulary (JSON) and of the idf weights, coefficients and intercepts
    (float32 safetensors): what a TF-IDF + logistic regression classifier ships, no pickle."""
    from safetensors.numpy import save

    vocabulary = {term: int(column) for term, column in vectorizer.vocabulary_.items()}
    weights = {
        "idf": vectorizer.idf_.astype(np.float32),
        "coef": model.coef_.astype(np.float32),
        "intercept": model.intercept_.astype(np.float32),
    }
    return len(json.dumps(vocabulary, ensure_ascii=False).encode("utf-8")) + len(save(weights))


def select_tfidf(
    train: Split, validation: Split, *, c_grid: Sequence[float] = C_GRID, seed: int = 0
) -> Peer:
    """TF-IDF of word 1-2 grams (sublinear tf, fitted on `train`) + logistic regression for
    each `C` of `c_grid`; keeps the one most accurate on `validation` (ties: the first)."""
    _require("tfidf-logreg")
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_limits

    if not c_grid:
        raise ConfigError("c_grid: give at least one C")
    texts, labels = labelled(train)
    validation_texts, validation_labels = labelled(validation)
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
    features, vectorize_seconds = _seconds(lambda: vectorizer.fit_transform(texts))
    validation_features = vectorizer.transform(validation_texts)
    search, best = [], None
    for c in c_grid:
        model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
        _, fit_seconds = _seconds(lambda model=model: model.fit(features, labels))
        score = accuracy(model.predict(validation_features), validation_labels)
        search.append({"C": c, "validation_accuracy": score})
        logger.info("tfidf-logreg C=%g: validation accuracy %.4f", c, score)
        if best is None or score > best[1]:
            best = (model, score, fit_seconds)
    model, _, fit_seconds = best

    def classifier(threads: int) -> Classify:
        return lambda batch: model.predict(vectorizer.transform(batch))

    return Peer(
        name="tfidf-logreg",
        kind="peer",
        runtime=_version("sklearn"),
        classifier=classifier,
        model_bytes=tfidf_bytes(vectorizer, model),
        limit_threads=lambda threads: threadpool_limits(limits=threads),
        threads_note=ONE_THREAD["tfidf-logreg"],
        chosen={"C": float(model.C), "ngram_range": [1, 2], "features": len(vectorizer.idf_)},
        search=search,
        train_seconds=vectorize_seconds + fit_seconds,
    )


def tfidf_peer(task: Task, **options: Any) -> Peer:
    """`select_tfidf` on the task's training and validation splits, then scored on both
    halves; `options` go to `select_tfidf`."""
    _check_task(task)
    return select_tfidf(task.train, task.validation, **options).evaluate(task)


# fastText --------------------------------------------------------------------------------------
def fasttext_line(text: str) -> str:
    """A text as fastText reads it: lower-cased, on one line, single spaces."""
    return " ".join(text.lower().split())


def _fasttext_classifier(model: Any, fallback: int) -> Classify:
    """`texts -> label ids` of a fastText model; a text with no words gets `fallback` (the most
    frequent training label), as fastText predicts no label for it."""

    def classify(texts: Sequence[str]) -> np.ndarray:
        predicted, _ = model.predict([fasttext_line(text) for text in texts], k=1)
        return np.asarray(
            [int(labels[0][len(FASTTEXT_LABEL) :]) if labels else fallback for labels in predicted]
        )

    return classify


def select_fasttext(
    train: Split,
    validation: Split,
    *,
    epochs: Sequence[int] = EPOCHS_GRID,
    learning_rates: Sequence[float] = LEARNING_RATES,
    dim: int = 100,
    bucket: int = 200_000,
    seed: int = 0,
) -> Peer:
    """fastText supervised (softmax, word bigrams hashed into `bucket` rows of `dim`, one
    training thread so that `seed` fixes the result) for each of `epochs` x `learning_rates`;
    keeps the one most accurate on `validation` (ties: the first). fastText's default of 2 M
    buckets would make an 800 MB model of a few thousand sentences; `bucket` is the knob."""
    _require("fasttext")
    import fasttext

    if not epochs or not learning_rates:
        raise ConfigError("epochs and learning_rates: give at least one of each")
    texts, labels = labelled(train)
    validation_texts, validation_labels = labelled(validation)
    fallback = int(np.bincount(labels).argmax())
    search, best = [], None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "train.txt"
        lines = [
            f"{FASTTEXT_LABEL}{label} {fasttext_line(text)}"
            for text, label in zip(texts, labels, strict=True)
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        for epoch in epochs:
            for lr in learning_rates:
                candidate = {"epoch": int(epoch), "lr": float(lr)}
                try:
                    model, seconds = _seconds(
                        lambda candidate=candidate: fasttext.train_supervised(
                            input=str(path),
                            **candidate,
                            wordNgrams=2,
                            dim=dim,
                            bucket=bucket,
                            minCount=1,
                            thread=1,
                            seed=seed,
                            verbose=0,
                        )
                    )
                except RuntimeError as error:  # fastText stops on a NaN loss (lr too high)
                    logger.info("fasttext %s: %s", candidate, error)
                    search.append({**candidate, "validation_accuracy": None, "error": str(error)})
                    continue
                predicted = _fasttext_classifier(model, fallback)(validation_texts)
                score = accuracy(predicted, validation_labels)
                search.append({**candidate, "validation_accuracy": score})
                logger.info("fasttext %s: validation accuracy %.4f", candidate, score)
                if best is None or score > best[1]:
                    best = (model, score, seconds, candidate)
        if best is None:
            raise ConfigError(
                f"fastText diverged for every epochs x lr candidate: {search}; lower the "
                "learning rates"
            )
        model, _, seconds, chosen = best
        model_path = Path(folder) / "model.bin"
        model.save_model(str(model_path))
        model_bytes = model_path.stat().st_size
    classify = _fasttext_classifier(model, fallback)
    return Peer(
        name="fasttext",
        kind="peer",
        runtime=_version("fasttext"),
        classifier=lambda threads: classify,
        model_bytes=model_bytes,
        threads_note=ONE_THREAD["fasttext"],
        chosen={**chosen, "wordNgrams": 2, "dim": dim, "bucket": bucket},
        search=search,
        train_seconds=seconds,
    )


def fasttext_peer(task: Task, **options: Any) -> Peer:
    """`select_fasttext` on the task's training and validation splits, then scored on both
    halves; `options` go to `select_fasttext`."""
    _check_task(task)
    return select_fasttext(task.train, task.validation, **options).evaluate(task)


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
        runtime=_version("onnxruntime"),
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


# the benchmark -----------------------------------------------------------------------------------
def add_ratios(rows: list[dict[str, Any]], reference: str = REFERENCE) -> None:
    """Each row's speed against `reference`'s: `latency_p50` (its p50 / the row's: how many
    times faster one sentence is) and `throughput` per thread count (the row's / its)."""
    base = next((row for row in rows if row["name"] == reference), None)
    if base is None or base["speed"] is None:
        raise ConfigError(f"no timed {reference} row to take the speed ratios against")
    base_speed = base["speed"]
    for row in rows:
        speed = row["speed"]
        row["ratios"] = {
            "latency_p50": base_speed["latency_ms"]["p50"] / speed["latency_ms"]["p50"],
            "throughput": {
                count: value / base_speed["throughput_texts_per_s"][count]
                for count, value in speed["throughput_texts_per_s"].items()
            },
        }


def train_peers(
    task: Task, names: Sequence[str] = PEERS, options: dict[str, dict[str, Any]] | None = None
) -> tuple[list[Peer], list[dict[str, str]]]:
    """The peers `names` trained and scored on `task` (`options[name]` go to its `select_*`),
    and a `{"name", "reason"}` for each skipped because its package is missing."""
    makers = {"tfidf-logreg": tfidf_peer, "fasttext": fasttext_peer}
    unknown = [name for name in names if name not in makers]
    if unknown:
        raise ConfigError(f"peers: choose from {', '.join(makers)}, got {unknown}")
    options = options or {}
    peers, skipped = [], []
    for name in names:
        reason = missing_dependency(name)
        if reason is not None:
            logger.warning("skipped: %s", reason)
            skipped.append({"name": name, "reason": reason})
            continue
        peers.append(makers[name](task, **options.get(name, {})))
    return peers, skipped


def benchmark_peers(
    run: Run,
    *,
    peers: Sequence[str] = PEERS,
    variants: Sequence[str] = (),
    export_settings: ExportSettings | None = None,
    work_dir: Path | None = None,
    latency_texts: int = 200,
    repeats: int = 3,
    options: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Train the peers on the run's training split, export the run's teacher (float32, int8)
    and each of `variants`' students (lowest seed, `export_settings`) as bundles under
    `work_dir` (default: the run's `peers/`), score every model on the validation and test
    halves and time it on the test texts, in this process. Returns peers.json's content:
    `run`, `reference`, `models` (with speed `ratios` against the int8 teacher), `skipped`,
    `inputs`, `machine`."""
    from distilrnn.bench.bundles import BATCH_SIZE
    from distilrnn.bench.tables import machine
    from distilrnn.config import ExportSettings

    if latency_texts < 1 or repeats < 1:
        raise ConfigError(f"latency_texts and repeats must be >= 1, got {latency_texts}, {repeats}")
    task = run.task()
    _check_task(task)
    work_dir = Path(work_dir) if work_dir is not None else run.root / "peers"
    trained, skipped = train_peers(task, peers, options)
    bundles = teacher_peers(run, work_dir)
    for variant in variants:
        bundles.append(student_peer(run, variant, work_dir, export_settings or ExportSettings()))
    models = [*trained, *(peer.evaluate(task) for peer in bundles)]
    test_texts, _ = labelled(task.test)
    for peer in models:
        logger.info("timing %s", peer.name)
        peer.time(test_texts, latency_texts=latency_texts, repeats=repeats)
    rows = [peer.record() for peer in models]
    add_ratios(rows)
    sizes = {name: len(task.splits[name]) for name in ("train", "validation", "test")}
    versions = [_version(module) for module, _ in DEPENDENCIES.values() if _installed(module)]
    return {
        "run": {"run_dir": str(run.root), "examples": sizes, "labels": list(task.label_names)},
        "reference": REFERENCE,
        "models": rows,
        "skipped": skipped,
        "inputs": {
            "timed_texts": len(test_texts),
            "latency_texts": min(latency_texts, len(test_texts)),
            "repeats": repeats,
            "batch_size": BATCH_SIZE,
            "threads": list(THREADS),
        },
        "machine": {**machine("onnxruntime"), "peers": versions},
    }


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def peers_markdown(results: dict[str, Any]) -> str:
    """`benchmark_peers` results as markdown: a row per model, speed-ups against the int8
    teacher, what each peer chose on validation and the threads it really uses."""
    examples, host = results["run"]["examples"], results["machine"]
    one, two = (str(count) for count in results["inputs"]["threads"])
    lines = [
        f"# Peers on the same data: {results['run']['run_dir']}",
        "",
        f"Trained on the training split ({examples['train']:,} texts); hyper-parameters chosen "
        f"on the validation half ({examples['validation']:,}); the test half "
        f"({examples['test']:,}) read once, to report. Speed-ups are against "
        f"{results['reference']} (onnxruntime).",
        "",
        f"| model | runtime | bytes | val acc (%) | test acc (%) | p50 (ms) | p90 (ms) | "
        f"texts/s ({one} thr) | texts/s ({two} thr) | p50 speed-up | texts/s speed-up ({two} "
        "thr) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["models"]:
        latency, throughput = row["speed"]["latency_ms"], row["speed"]["throughput_texts_per_s"]
        lines.append(
            f"| {row['name']} | {row['runtime']} | {row['model_bytes']:,} | "
            f"{100 * row['validation_accuracy']:.2f} | {100 * row['test_accuracy']:.2f} | "
            f"{latency['p50']:.3f} | {latency['p90']:.3f} | {throughput[one]:.0f} | "
            f"{throughput[two]:.0f} | {row['ratios']['latency_p50']:.1f}x | "
            f"{row['ratios']['throughput'][two]:.1f}x |"
        )
    lines.append("")
    for row in results["models"]:
        chosen = {k: v for k, v in row["chosen"].items() if k != "bundle_dir"}
        if row["kind"] == "peer":
            lines.append(f"- {row['name']}: chose {json.dumps(chosen)} on validation.")
        if row["threads_note"]:
            lines.append(f"- {row['name']}: {row['threads_note']}.")
    for skip in results["skipped"]:
        lines.append(f"- skipped {skip['name']}: {skip['reason']}.")
    lines += [
        "",
        f"Latency: one sentence per call, one thread; throughput: batches of "
        f"{results['inputs']['batch_size']} in test order. Tokenisation included. "
        f"{host['cpu_count']} CPUs, {host['platform']}.",
    ]
    return "\n".join(lines) + "\n"
