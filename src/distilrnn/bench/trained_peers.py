"""The peers trained from scratch on the run's data (`distilrnn.bench.peers` sets them beside the
students):

    tfidf-logreg       scikit-learn: TF-IDF of word 1-2 grams + logistic regression, `C` chosen
                       on the validation half
    fasttext           fastText supervised with word bigrams, epochs and learning rate chosen on
                       the validation half (Joulin et al. 2017)

The peers train on the run's training split only; their hyper-parameters are chosen on the
validation half (`select_tfidf` and `select_fasttext` are never given the test half), and the
test half is read once, to report.

The peers need `pip install 'distilrnn[peers]'`: scikit-learn, and fastText from the
`fasttext-community` wheel. The `fasttext` 0.9.3 release builds from source and fails under
numpy 2, and the `fasttext-numpy2` and `fasttext-modern` wheels train on uninitialised memory:
the same seed gives another model, or a NaN, once the process has allocated and freed enough
(tests/test_peers.py checks the installed one). A peer whose package is missing is skipped with
a line saying what to install.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from distilrnn.bench.peer import (
    Classify,
    Peer,
    accuracy,
    check_task,
    installed_version,
    labelled,
)
from distilrnn.errors import ConfigError
from distilrnn.timing import time_calls

if TYPE_CHECKING:
    from distilrnn.data import Split, Task

logger = logging.getLogger(__name__)

PEERS = ("tfidf-logreg", "fasttext")
# name -> (module, distribution to install)
DEPENDENCIES = {
    "tfidf-logreg": ("sklearn", "scikit-learn"),
    "fasttext": ("fasttext", "fasttext-community"),
}
C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
EPOCHS_GRID = (5, 10, 25)
LEARNING_RATES = (0.1, 0.5, 1.0)
FASTTEXT_LABEL = "__label__"
ONE_THREAD = {
    "tfidf-logreg": "one core: the TF-IDF transform is Python, the sparse product scipy's",
    "fasttext": "one core: fastText's predict runs one thread per call",
}


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


def _seconds(call: Callable[[], Any]) -> tuple[Any, float]:
    """`call()`'s result and its wall seconds (`distilrnn.timing`, no warm-up)."""
    result: list[Any] = []
    (seconds,) = time_calls(lambda _: result.append(call()), [None], warmup=0)
    return result[0], float(seconds)


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
        runtime=installed_version("sklearn"),
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
    check_task(task)
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
        runtime=installed_version("fasttext"),
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
    check_task(task)
    return select_fasttext(task.train, task.validation, **options).evaluate(task)


# by name ------------------------------------------------------------------------------------------
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
