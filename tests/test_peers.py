"""Peers on the same data: TF-IDF + logistic regression and fastText train on the training split,
choose their hyper-parameters on the validation half without ever seeing the test half, and are
scored on the right split; peers.json's schema on a tiny run; the report plots the peers.
Timings are not asserted."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sentences, tiny_run_overrides

from distilrnn.bench.peers import (
    PEERS_NAME,
    REFERENCE,
    add_ratios,
    benchmark_peers,
    fasttext_line,
    fasttext_peer,
    peers_markdown,
    select_fasttext,
    select_tfidf,
    tfidf_peer,
)
from distilrnn.data import Task
from distilrnn.errors import ConfigError

sklearn = pytest.importorskip("sklearn")
fasttext = pytest.importorskip("fasttext")

SECRET = "zyzzyva"  # a word only the test half holds


def tiny_task() -> Task:
    """Sentiment sentences (the label is the polarity of their one sentiment word); every test
    sentence carries SECRET, so a test text is recognised wherever it turns up."""
    train = make_sentences(60, seed=1)
    validation = make_sentences(20, seed=2)
    test = [(f"{text} {SECRET}", label) for text, label in make_sentences(20, seed=3)]

    def columns(rows):
        return [text for text, _ in rows], [label for _, label in rows]

    return Task.from_lists(*columns(train), validation=columns(validation), test=columns(test))


def load_script(name: str):
    """A script of benchmarks/ as a module."""
    path = Path(__file__).parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"benchmarks_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


FAST = {"epochs": (5, 20), "learning_rates": (0.5,), "bucket": 1000}


def test_tfidf_peer_scores_validation_and_test_with_its_own_predictions():
    task = tiny_task()
    peer = tfidf_peer(task, c_grid=(0.1, 10.0))

    for name in ("validation", "test"):
        split = task.split(name)
        expected = np.mean(peer.predict(split.texts) == np.asarray(split.labels))
        assert getattr(peer, f"{name}_accuracy") == pytest.approx(expected)
    assert peer.predict(["a great film", "a dull film"]).tolist() == [1, 0]
    assert peer.chosen["C"] in (0.1, 10.0)
    assert peer.model_bytes > 0


def test_tfidf_keeps_the_c_most_accurate_on_validation():
    task = tiny_task()
    peer = select_tfidf(task.train, task.validation, c_grid=(0.001, 10.0))

    scores = {row["C"]: row["validation_accuracy"] for row in peer.search}
    assert peer.chosen["C"] == max(scores, key=scores.get)
    # on validation, the chosen model's accuracy is its search row's
    validation = task.validation
    assert np.mean(peer.predict(validation.texts) == validation.labels) == max(scores.values())


def test_fasttext_peer_trains_predicts_and_scores_both_halves():
    task = tiny_task()
    peer = fasttext_peer(task, **FAST)

    assert peer.predict(["great", "awful"]).tolist() == [1, 0]
    test = task.test
    assert peer.test_accuracy == pytest.approx(np.mean(peer.predict(test.texts) == test.labels))
    assert {(row["epoch"], row["lr"]) for row in peer.search} == {(5, 0.5), (20, 0.5)}
    assert peer.chosen["wordNgrams"] == 2
    assert peer.model_bytes > 0


def test_fasttext_gives_the_majority_label_to_a_text_without_words():
    task = tiny_task()
    peer = select_fasttext(task.train, task.validation, **FAST)

    majority = np.bincount(task.train.labels).argmax()
    assert peer.predict(["   "]).tolist() == [majority]


def test_fasttext_training_does_not_depend_on_what_the_process_freed_before(tmp_path: Path):
    """Some fastText wheels read uninitialised memory while training: the same seed then gives
    other weights (or a NaN) once freed heap memory is dirty. The installed one must not."""
    train = tiny_task().train
    path = tmp_path / "train.txt"
    lines = [
        f"__label__{label} {fasttext_line(text)}"
        for text, label in zip(train.texts, train.labels, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def weights() -> np.ndarray:
        model = fasttext.train_supervised(
            input=str(path), epoch=5, lr=0.5, wordNgrams=2, bucket=1000, thread=1, seed=0, verbose=0
        )
        return model.get_input_matrix()

    first = weights()
    garbage = bytearray(b"\xff" * 50_000_000)  # freed at once: the heap now holds 0xff bytes
    del garbage
    strings = [str(i) * 3 for i in range(1_000_000)]
    del strings
    np.testing.assert_array_equal(weights(), first)


def test_selection_never_reads_the_test_half(monkeypatch: pytest.MonkeyPatch):
    """Spies on everything that fits or scores a candidate: no test text reaches a fit, and the
    test texts are first classified after the last fit (so after the choice)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    events: list[tuple[str, list[str]]] = []
    fit_transform, transform = TfidfVectorizer.fit_transform, TfidfVectorizer.transform
    fit = LogisticRegression.fit
    train_supervised = fasttext.train_supervised

    def spy_fit_transform(self, texts, *args, **kwargs):
        events.append(("fit", list(texts)))
        return fit_transform(self, texts, *args, **kwargs)

    def spy_transform(self, texts, *args, **kwargs):
        events.append(("classify", list(texts)))
        return transform(self, texts, *args, **kwargs)

    def spy_fit(self, features, labels, *args, **kwargs):
        events.append(("fit", []))  # features only; the texts went through fit_transform
        return fit(self, features, labels, *args, **kwargs)

    def spy_train_supervised(*args, **kwargs):
        events.append(("fit", Path(kwargs["input"]).read_text(encoding="utf-8").splitlines()))
        model = train_supervised(*args, **kwargs)
        predict = model.predict

        def spy_predict(texts, *a, **k):
            events.append(("classify", list(texts)))
            return predict(texts, *a, **k)

        model.predict = spy_predict
        return model

    monkeypatch.setattr(TfidfVectorizer, "fit_transform", spy_fit_transform)
    monkeypatch.setattr(TfidfVectorizer, "transform", spy_transform)
    monkeypatch.setattr(LogisticRegression, "fit", spy_fit)
    monkeypatch.setattr(fasttext, "train_supervised", spy_train_supervised)
    task = tiny_task()

    for make, options in ((tfidf_peer, {"c_grid": (0.1, 1.0)}), (fasttext_peer, FAST)):
        events.clear()
        make(task, **options)
        fits = [i for i, (kind, _) in enumerate(events) if kind == "fit"]
        reads_test = [i for i, (_, texts) in enumerate(events) if any(SECRET in t for t in texts)]
        assert len(fits) >= 2 and reads_test  # every candidate fitted; the test half scored
        assert all(events[i][0] == "classify" for i in reads_test)
        assert min(reads_test) > max(fits)


def test_speed_ratios_are_against_the_int8_teacher():
    def row(name, p50, texts_per_s):
        speed = {"latency_ms": {"p50": p50}, "throughput_texts_per_s": {"1": texts_per_s}}
        return {"name": name, "speed": speed}

    rows = [row("fasttext", 0.1, 5000.0), row(REFERENCE, 2.0, 500.0)]
    add_ratios(rows)

    assert rows[0]["ratios"] == {"latency_p50": 20.0, "throughput": {"1": 10.0}}
    assert rows[1]["ratios"]["latency_p50"] == 1.0
    with pytest.raises(ConfigError, match=REFERENCE):
        add_ratios(rows[:1])


@pytest.fixture(scope="module")
def peers_run(tiny_teacher_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """A tiny finished run (one GRU student) with benchmarks/peers.py run on it."""
    from conftest import write_tsv

    from distilrnn.config import load_config
    from distilrnn.pipeline import Pipeline

    root = tmp_path_factory.mktemp("peers")
    task_dir = root / "task"
    task_dir.mkdir()
    write_tsv(task_dir / "train.tsv", make_sentences(48, seed=1))
    write_tsv(task_dir / "dev.tsv", make_sentences(24, seed=2))
    run_dir = root / "run"
    overrides = tiny_run_overrides(task_dir, tiny_teacher_dir, run_dir)
    overrides.append('variant=[{name="gru", rnn="gru", objective="mse"}]')
    config_path = root / "config.toml"
    config_path.write_text("", encoding="utf-8")
    Pipeline(load_config(None, overrides)).run()
    argv = [str(config_path), *[f"--set={item}" for item in overrides]]
    argv += ["--variants", "gru", "--latency-texts", "3", "--repeats", "1", "--out"]
    argv += [str(root / "out.json"), "--fasttext-bucket", "1000"]
    results = load_script("peers").main(argv)
    return run_dir, root, results


def test_peers_json_holds_every_model_scored_and_timed(peers_run):
    run_dir, root, _ = peers_run

    written = json.loads((run_dir / PEERS_NAME).read_text())
    assert written == json.loads((root / "out.json").read_text())
    names = [row["name"] for row in written["models"]]
    assert names == ["tfidf-logreg", "fasttext", "teacher-onnx-fp32", REFERENCE, "student-gru"]
    assert written["reference"] == REFERENCE and written["skipped"] == []
    assert written["run"]["examples"] == {"train": 48, "validation": 12, "test": 12}
    for row in written["models"]:
        assert set(row) >= {"kind", "runtime", "model_bytes", "chosen", "ratios", "speed"}
        assert 0.0 <= row["validation_accuracy"] <= 1.0 and 0.0 <= row["test_accuracy"] <= 1.0
        assert row["model_bytes"] > 0
        assert set(row["speed"]["throughput_texts_per_s"]) == {"1", "2"}
        assert row["speed"]["latency_ms"]["calls"] == 3
    int8 = written["models"][3]
    assert int8["ratios"]["latency_p50"] == 1.0
    config = json.loads((Path(int8["chosen"]["bundle_dir"]) / "config.json").read_text())
    assert config["quantization"]["mode"] == "dynamic"
    assert written["command"].startswith("python benchmarks/peers.py")
    markdown = (root / "out.md").read_text()
    assert f"| {REFERENCE} |" in markdown and "chose" in markdown


def test_int8_teacher_scores_close_to_the_float_teacher(peers_run):
    _, _, results = peers_run
    fp32, int8 = results["models"][2], results["models"][3]

    # dynamic int8 may flip a borderline text or two of the 12, not the whole half
    assert abs(fp32["test_accuracy"] - int8["test_accuracy"]) <= 2 / 12


def test_report_speed_plot_includes_the_peers(peers_run):
    from distilrnn.report.data import load_report_data
    from distilrnn.report.plots import peer_points, plot_accuracy_against

    run_dir, root, _ = peers_run
    data = load_report_data(run_dir)

    assert data.peers is not None
    points = {name: x for name, x, _, _ in peer_points(data, "speed")}
    assert set(points) >= {"tfidf-logreg", "fasttext", REFERENCE}
    assert plot_accuracy_against(data, root / "speed.png", "speed")
    assert (root / "speed.png").stat().st_size > 0


def test_markdown_names_a_skipped_peer():
    rows = [
        {
            "name": REFERENCE,
            "kind": "teacher",
            "runtime": "onnxruntime",
            "model_bytes": 10,
            "validation_accuracy": 0.5,
            "test_accuracy": 0.5,
            "chosen": {},
            "threads_note": "",
            "speed": {
                "latency_ms": {"p50": 1.0, "p90": 2.0},
                "throughput_texts_per_s": {"1": 10.0, "2": 20.0},
            },
        }
    ]
    add_ratios(rows)
    results = {
        "run": {"run_dir": "r", "examples": {"train": 1, "validation": 1, "test": 1}},
        "reference": REFERENCE,
        "models": rows,
        "skipped": [{"name": "fasttext", "reason": "the fasttext peer needs the module"}],
        "inputs": {"threads": [1, 2], "batch_size": 64},
        "machine": {"cpu_count": 2, "platform": "linux"},
    }
    assert "- skipped fasttext: the fasttext peer needs the module." in peers_markdown(results)


def test_peers_refuse_a_regression_task():
    texts = [text for text, _ in make_sentences(20, seed=1)]
    task = Task.from_lists(texts, [0.5 + i for i in range(20)], task_type="regression")
    with pytest.raises(ConfigError, match="regression"):
        tfidf_peer(task)


def test_benchmark_peers_refuses_bad_timing_options(tmp_path: Path):
    from distilrnn.run import Run

    with pytest.raises(ConfigError, match="repeats"):
        benchmark_peers(Run(tmp_path), repeats=0)


def test_export_teacher_quantize_writes_a_dynamic_int8_bundle(peers_run, tmp_path: Path):
    from typer.testing import CliRunner

    from distilrnn.cli import app
    from distilrnn.runtime import Predictor

    run_dir, _, _ = peers_run
    out = tmp_path / "teacher-int8"
    result = CliRunner().invoke(app, ["export-teacher", str(run_dir), str(out), "--quantize"])

    assert result.exit_code == 0, result.output
    config = json.loads((out / "config.json").read_text())
    assert config["quantization"]["mode"] == "dynamic"
    assert (out / "model.onnx").stat().st_size < config["quantization"]["float_model_bytes"]
    assert Predictor(out).logits(["a good film"]).shape == (1, 2)


def test_a_peer_without_its_package_is_skipped_with_what_to_install(monkeypatch):
    import sys

    from distilrnn.bench.peers import train_peers

    monkeypatch.setitem(sys.modules, "fasttext", None)  # `import fasttext` fails
    task = tiny_task()
    peers, skipped = train_peers(task, options={"tfidf-logreg": {"c_grid": (1.0,)}})

    assert [peer.name for peer in peers] == ["tfidf-logreg"]
    assert [skip["name"] for skip in skipped] == ["fasttext"]
    assert "pip install 'distilrnn[peers]'" in skipped[0]["reason"]
    with pytest.raises(ConfigError, match="fasttext-community"):
        fasttext_peer(task)
