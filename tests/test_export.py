"""Tests for the bundle export: ONNX parity, bundle contents, vocabulary pruning, quantisation,
atomic writes and the `distilrnn export` command."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import VOCAB, build_tiny_student
from typer.testing import CliRunner

from distilrnn.cli import app
from distilrnn.config import ExportSettings
from distilrnn.errors import ConfigError, MissingFileError, RunFolderError
from distilrnn.export import BundleModel, export_bundle, export_onnx, export_student
from distilrnn.run import Run, StudentRecord
from distilrnn.runtime import (
    BUNDLE_FILES,
    CARD_NAME,
    CONFIG_NAME,
    MODEL_NAME,
    TOKENIZER_NAME,
    Predictor,
)
from distilrnn.student import RNNStudent, StudentConfig

LABELS = ["negative", "positive"]


def padded_batch(lengths: list[int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random right-padded `(batch, max(lengths))` int64 ids (pads are id 0) and their mask."""
    rng = np.random.default_rng(seed)
    seq = max(lengths)
    mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int64)
    input_ids = rng.integers(5, len(VOCAB), size=(len(lengths), seq)) * mask
    return input_ids.astype(np.int64), mask


def onnx_logits(path: Path, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]


def bundle_logits(bundle_dir: Path, texts: list[str]) -> np.ndarray:
    return Predictor(bundle_dir).logits(texts)


def export(student_dir: Path, bundle_dir: Path, **settings) -> dict:
    """`export_student` of a student folder with `LABELS` and `settings` (`ExportSettings`)."""
    return export_student(student_dir, bundle_dir, ExportSettings(labels=LABELS, **settings))


def text_file(path: Path, texts: list[str]) -> str:
    """`texts` written one a line to `path`: a text source for `prune_vocab` / `rank_texts`."""
    path.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("rnn", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["attention", "max", "mean", "last"])
def test_onnx_logits_match_eager_student_on_padded_batches(
    tmp_path: Path, rnn: str, bidirectional: bool, pooling: str
):
    torch.manual_seed(0)
    student_dir = build_tiny_student(
        tmp_path / "student", rnn=rnn, bidirectional=bidirectional, pooling=pooling, num_layers=2
    )
    student = RNNStudent.load(student_dir)
    export_onnx(BundleModel(student), tmp_path / MODEL_NAME)
    # Batch size and sequence length both differ from the export example (2 x 3).
    input_ids, attention_mask = padded_batch([4, 11, 1, 7, 2, 11, 5], seed=1)
    with torch.no_grad():
        eager = student(torch.from_numpy(input_ids), torch.from_numpy(attention_mask)).numpy()
    exported = onnx_logits(tmp_path / MODEL_NAME, input_ids, attention_mask)
    assert np.abs(exported - eager).max() < 1e-4


def test_bundle_holds_model_tokenizer_labels_config_and_card(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    summary = export(student_dir, tmp_path / "bundle")
    names = sorted(p.name for p in (tmp_path / "bundle").iterdir())
    assert names == sorted([*BUNDLE_FILES, CARD_NAME])
    assert summary["bundle_bytes"] == sum(
        (tmp_path / "bundle" / name).stat().st_size for name in BUNDLE_FILES
    )
    config = json.loads((tmp_path / "bundle" / CONFIG_NAME).read_text())
    assert config["num_labels"] == 2
    assert config["max_length"] == 16  # the student's training max_length, from metrics.json
    assert config["pad_token_id"] == VOCAB.index("[PAD]")


def test_bundle_tokenizer_is_the_students_without_the_indentation(tmp_path: Path):
    from tokenizers import Tokenizer

    student_dir = build_tiny_student(tmp_path / "student")
    export(student_dir, tmp_path / "bundle")
    source, shipped = student_dir / TOKENIZER_NAME, tmp_path / "bundle" / TOKENIZER_NAME
    assert shipped.stat().st_size < source.stat().st_size
    assert json.loads(shipped.read_text()) == json.loads(source.read_text())
    texts = ["A gripping film .", "dull", "never , ever boring !"]
    encode = [Tokenizer.from_file(str(path)).encode_batch(texts) for path in (source, shipped)]
    assert [e.ids for e in encode[0]] == [e.ids for e in encode[1]]


def test_model_card_states_teacher_task_metrics_size_and_usage(tmp_path: Path):
    teacher = {"name": "tiny-bert", "validation_accuracy": 0.91, "test_accuracy": 0.9}
    summary = _export_with_context(tmp_path, teacher, task="glue/sst2")
    card = (tmp_path / "bundle" / CARD_NAME).read_text()
    assert "`tiny-bert`" in card
    assert "`glue/sst2`" in card
    assert "| test_accuracy | 50.00 % |" in card
    assert f"**{summary['bundle_bytes']:,}**" in card
    assert "p50" in card
    assert "distilrnn predict" in card
    assert "from distilrnn import Predictor" in card


def test_pruned_bundle_matches_unpruned_on_texts_whose_tokens_were_kept(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    export(student_dir, tmp_path / "full")
    transfer = ["the film is good", "a dull movie", "the plot is quite boring"]
    export(student_dir, tmp_path / "pruned", prune_vocab=text_file(tmp_path / "t.txt", transfer))
    texts = ["the movie is good", "a quite dull film", "the plot is boring"]
    np.testing.assert_allclose(
        bundle_logits(tmp_path / "pruned", texts),
        bundle_logits(tmp_path / "full", texts),
        atol=1e-6,
    )


def test_pruned_student_reads_the_kept_rows_through_its_id_table():
    torch.manual_seed(0)
    student = RNNStudent(StudentConfig(vocab_size=len(VOCAB), embedding_dim=8, hidden_size=6))
    student.eval()
    keep = np.array([5, 7, 20])
    pruned, id_table = student.prune_vocabulary(keep, unk_id=VOCAB.index("[UNK]"))
    assert pruned.config.vocab_size == 5  # padding, unknown and the three kept ids
    assert id_table.dtype == torch.int64 and id_table.shape == (len(VOCAB),)
    ids = torch.tensor([[5, 7, 20, 0], [20, 5, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        torch.testing.assert_close(pruned(id_table[ids], mask), student(ids, mask))
        dropped = torch.tensor([[9, 7]])
        unknown = torch.tensor([[VOCAB.index("[UNK]"), 7]])
        torch.testing.assert_close(
            pruned(id_table[dropped], torch.ones_like(dropped)),
            student(unknown, torch.ones_like(unknown)),
        )


def test_bundle_from_an_in_memory_student_and_tokenizer_object(tmp_path: Path):
    from transformers import AutoTokenizer

    student_dir = build_tiny_student(tmp_path / "student")
    export(student_dir, tmp_path / "from-folder")
    tokenizer = AutoTokenizer.from_pretrained(str(student_dir)).backend_tokenizer
    before = tokenizer.to_str()
    settings = ExportSettings(max_length=16)
    export_bundle(
        RNNStudent.load(student_dir), tokenizer, tmp_path / "in-memory", settings, labels=LABELS
    )
    assert tokenizer.to_str() == before  # the caller's tokenizer is not reconfigured
    texts = ["the brilliant film", "a dull movie", "the plot is boring"]
    np.testing.assert_allclose(
        bundle_logits(tmp_path / "in-memory", texts),
        bundle_logits(tmp_path / "from-folder", texts),
        atol=1e-6,
    )


def test_pruned_bundle_maps_unseen_tokens_to_the_unknown_row(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    export(student_dir, tmp_path / "full")
    export(student_dir, tmp_path / "pruned", prune_vocab=text_file(tmp_path / "t", ["the film"]))
    # "brilliant" is in the vocabulary but not in the pruning texts; "zzz" is in neither.
    pruned = bundle_logits(tmp_path / "pruned", ["the brilliant film"])
    unknown = bundle_logits(tmp_path / "full", ["the zzz film"])
    known = bundle_logits(tmp_path / "full", ["the brilliant film"])
    np.testing.assert_allclose(pruned, unknown, atol=1e-6)
    assert not np.allclose(pruned, known, atol=1e-6)


def test_pruning_keeps_rows_of_used_and_special_tokens_only(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=16)
    texts = text_file(tmp_path / "t.txt", ["the good film"])
    summary = export(student_dir, tmp_path / "pruned", prune_vocab=texts)
    pruning = summary["compression"]["prune_vocab"]
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert pruning["vocab_size"] == len(VOCAB)
    assert pruning["kept_rows"] == len(special) + 3  # the, good, film
    assert pruning["bytes_saved"] == (len(VOCAB) - 8) * 16 * 4 - len(VOCAB) * 8


def test_pruned_graph_takes_tokenizer_ids_through_an_id_table(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=16)
    export(student_dir, tmp_path / "pruned", prune_vocab=text_file(tmp_path / "t", ["the film"]))
    graph = onnx.load(str(tmp_path / "pruned" / MODEL_NAME)).graph
    shapes = {i.name: (tuple(i.dims), i.data_type) for i in graph.initializer}
    assert shapes["id_table"] == ((len(VOCAB),), onnx.TensorProto.INT64)
    assert shapes["student.embedding.weight"] == ((7, 16), onnx.TensorProto.FLOAT)


def test_quantized_bundle_runs_and_is_smaller(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=64, hidden_size=32)
    full = export(student_dir, tmp_path / "full")
    quantized = export(student_dir, tmp_path / "int8", quantize=True)
    assert quantized["files"][MODEL_NAME] < full["files"][MODEL_NAME] / 2
    assert (
        quantized["compression"]["quantize"]["float_model_bytes"] > quantized["files"][MODEL_NAME]
    )
    probabilities = Predictor(tmp_path / "int8").predict_proba(["the good film", "dull"])
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_full_rank_factorised_bundle_gives_the_students_logits(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=16)
    export(student_dir, tmp_path / "full")
    rank_texts = text_file(tmp_path / "t.txt", ["the good film", "the film"])
    summary = export(student_dir, tmp_path / "rank16", embedding_rank=16, rank_texts=rank_texts)
    texts = ["the brilliant film", "a dull movie", "the plot is boring"]
    np.testing.assert_allclose(
        bundle_logits(tmp_path / "rank16", texts),
        bundle_logits(tmp_path / "full", texts),
        atol=1e-4,
    )
    assert summary["compression"]["embedding_rank"] == {
        "from_width": 16,
        "rank": 16,
        "token_weights": "frequency in the given texts",
    }


def test_factorised_bundle_with_a_4bit_embedding_is_smaller_and_runs(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=64, hidden_size=32)
    int8 = export(student_dir, tmp_path / "int8", quantize=True)
    small = export(
        student_dir,
        tmp_path / "small",
        embedding_rank=32,
        quantize=True,
        embedding_bits=4,
        # the id table stays int64
        prune_vocab=text_file(tmp_path / "t.txt", ["the good film", "a dull movie"]),
    )
    assert small["files"][MODEL_NAME] < int8["files"][MODEL_NAME]
    graph = onnx.load(str(tmp_path / "small" / MODEL_NAME)).graph
    assert "GatherBlockQuantized" in {node.op_type for node in graph.node}
    shapes = {i.name: (tuple(i.dims), i.data_type) for i in graph.initializer}
    assert shapes["id_table"] == ((len(VOCAB),), onnx.TensorProto.INT64)
    assert small["compression"]["quantize"]["embedding_bits"] == 4
    assert "4-bit blocks" in (tmp_path / "small" / "README.md").read_text()
    probabilities = Predictor(tmp_path / "small").predict_proba(["the good film", "zzz"])
    assert probabilities.shape == (2, 2)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)


def test_a_4bit_embedding_needs_quantize_and_bits_are_8_or_4():
    with pytest.raises(ConfigError, match="4-bit embedding is a quantisation: pass quantize"):
        ExportSettings(embedding_bits=4)
    with pytest.raises(ConfigError, match=r"embedding_bits must be one of \(8, 4\), got 2"):
        ExportSettings(quantize=True, embedding_bits=2)
    ExportSettings(quantize=True, embedding_bits=4)


def test_export_settings_reject_a_negative_rank_and_rank_texts_without_a_rank():
    with pytest.raises(ConfigError, match=r"export\.embedding_rank"):
        ExportSettings(embedding_rank=-1)
    with pytest.raises(ConfigError, match=r"export\.rank_texts"):
        ExportSettings(rank_texts="transfer")
    with pytest.raises(ConfigError, match=r"export\.max_length"):
        ExportSettings(max_length=-3)


def test_failed_export_keeps_the_existing_bundle(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    export(student_dir, tmp_path / "bundle")
    before = {p.name: p.read_bytes() for p in (tmp_path / "bundle").iterdir()}
    empty = text_file(tmp_path / "empty.txt", [])
    with pytest.raises(ValueError, match="no texts"):
        export(student_dir, tmp_path / "bundle", prune_vocab=empty)
    assert {p.name: p.read_bytes() for p in (tmp_path / "bundle").iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "empty.txt", "student"]


def test_export_replaces_an_existing_bundle(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    export(student_dir, tmp_path / "bundle")
    export_student(student_dir, tmp_path / "bundle", ExportSettings(labels=["bad", "good"]))
    assert Predictor(tmp_path / "bundle").labels == ["bad", "good"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "student"]


def test_export_refuses_to_replace_a_folder_that_is_not_a_bundle(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a distilrnn bundle"):
        export(student_dir, tmp_path / "notes")
    assert (tmp_path / "notes" / "todo.txt").read_text() == "keep me"


def test_export_rejects_label_names_that_do_not_fit_the_student(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    with pytest.raises(ValueError, match="3 label names"):
        export_student(student_dir, tmp_path / "bundle", ExportSettings(labels=["a", "b", "c"]))


def test_export_outside_a_run_without_labels_says_how_to_name_them(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    with pytest.raises(ValueError, match="--labels"):
        export_student(student_dir, tmp_path / "bundle")


def build_tiny_run(run_dir: Path) -> Path:
    """A run folder around a tiny student (`distilled-gru`, seed 0): a data stage (label names,
    a test half), a teacher stage and its metrics. Returns the student's folder."""
    from datasets import Dataset, DatasetDict

    from distilrnn.data import Task

    student_dir = build_tiny_student(run_dir / "students" / "distilled-gru" / "seed-0")
    split = Dataset.from_dict(
        {"text": ["the good film", "a dull movie", "boring"], "label": [1, 0, 0]}
    )
    Task(DatasetDict(train=split, validation=split, test=split), ["neg", "pos"]).save(
        run_dir / "data"
    )
    data = {"path": "$DATA/sst2", "hub_name": "", "train_file": "train.tsv"}
    (run_dir / "data" / "stage.json").write_text(json.dumps({"settings": {"data": data}}))
    (run_dir / "teacher" / "model").mkdir(parents=True)
    (run_dir / "teacher" / "stage.json").write_text(
        json.dumps({"settings": {"model": "tiny-bert", "checkpoint": ""}})
    )
    (run_dir / "teacher" / "metrics.json").write_text(json.dumps({"test_accuracy": 0.875}))
    return student_dir


def test_export_reads_labels_teacher_and_task_from_the_run(tmp_path: Path, monkeypatch):
    student_dir = build_tiny_run(tmp_path / "run")
    monkeypatch.setenv("DATA", "/machine/specific")
    export_student(student_dir, tmp_path / "bundle")
    config = json.loads((tmp_path / "bundle" / CONFIG_NAME).read_text())
    assert Predictor(tmp_path / "bundle").labels == ["neg", "pos"]
    assert config["teacher"] == {
        "name": "tiny-bert",
        "test_accuracy": 0.875,
        "source": "fine-tuned",  # no checkpoint: distilrnn fine-tuned the backbone
    }
    assert config["task"] == "sst2 (train.tsv)"  # the folder's name, not the machine's path
    assert config["evaluation"]["examples"] == 3  # the run's test half


def test_export_of_a_run_names_the_student_by_variant_and_weights_by_its_transfer_set(
    tmp_path: Path,
):
    build_tiny_run(tmp_path / "run")
    settings = ExportSettings(embedding_rank=6, prune_vocab="transfer")
    summary = export_student(
        tmp_path / "run", tmp_path / "bundle", settings, variant="distilled-gru"
    )
    assert summary["compression"]["embedding_rank"]["token_weights"] == (
        "frequency in the given texts"
    )
    # the training split: the, good, film, a, dull, movie, boring and the special tokens
    assert summary["compression"]["prune_vocab"]["kept_rows"] == 7 + 5


def test_the_transfer_source_outside_a_run_says_it_needs_the_run(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    with pytest.raises(RunFolderError, match="needs the student's run"):
        export(student_dir, tmp_path / "bundle", prune_vocab="transfer")


def test_run_variant_and_seed_name_the_student_folder(tmp_path: Path):
    for seed in (3, 1):
        (tmp_path / "students" / "baseline-lstm" / f"seed-{seed}").mkdir(parents=True)
    run = Run(tmp_path)
    assert run.resolve_student("baseline-lstm") == (
        tmp_path / "students" / "baseline-lstm" / "seed-1"
    )
    assert run.resolve_student("baseline-lstm", 3).name == "seed-3"
    with pytest.raises(RunFolderError, match="--variant"):
        export_student(tmp_path, tmp_path / "bundle")
    with pytest.raises(RunFolderError, match="--variant"):
        export_student(tmp_path / "students" / "baseline-lstm" / "seed-1", tmp_path / "b", seed=1)
    with pytest.raises(MissingFileError, match="'gru'"):
        run.resolve_student("gru")
    with pytest.raises(MissingFileError, match="seeds: 1, 3"):
        run.resolve_student("baseline-lstm", 2)
    with pytest.raises(MissingFileError, match="'gru'"):
        export_student(tmp_path, tmp_path / "bundle", variant="gru")


def test_cli_export_writes_a_pruned_quantized_bundle(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    texts = tmp_path / "transfer.txt"
    texts.write_text("the good film\n\na dull movie\n")
    result = CliRunner().invoke(
        app,
        [
            "export",
            str(student_dir),
            str(tmp_path / "bundle"),
            "--labels",
            "negative,positive",
            "--prune-vocab",
            str(texts),
            "--quantize",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "vocabulary pruning: 11 of 29 rows kept" in result.output
    assert "int8 quantisation" in result.output
    assert Predictor(tmp_path / "bundle").labels == ["negative", "positive"]


def test_cli_export_factorises_the_embedding_and_stores_it_in_4bit_blocks(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student", embedding_dim=32)
    texts = tmp_path / "transfer.txt"
    texts.write_text("the good film\na dull movie\n")
    args = ["export", str(student_dir), str(tmp_path / "bundle"), "--labels", "neg,pos"]
    args += ["--embedding-rank", "16", "--rank-texts", str(texts)]
    args += ["--quantize", "--embedding-bits", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "embedding factorised: 32 -> 16 columns" in result.output
    assert "frequency in the given texts" in result.output
    assert "int8 quantisation (embedding 4-bit)" in result.output
    config = json.loads((tmp_path / "bundle" / CONFIG_NAME).read_text())
    assert config["student"]["embedding_dim"] == 16
    assert Predictor(tmp_path / "bundle").predict(["the good film"])[0].label in {"neg", "pos"}


def test_export_removes_temporary_folders_an_interrupted_export_left(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    stale = tmp_path / ".bundle.tmp-ab12_x9z"
    (stale / "model.onnx").parent.mkdir()
    (stale / "model.onnx").write_bytes(b"half written")
    export(student_dir, tmp_path / "bundle")
    assert not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "student"]


def test_stale_build_cleanup_leaves_other_bundles_and_files_alone(tmp_path: Path):
    student_dir = build_tiny_student(tmp_path / "student")
    others = [
        tmp_path / ".other.tmp-ab12_x9z",  # another bundle's build
        tmp_path / ".bundle.tmp-x.tmp-ab12_x9z",  # the bundle `bundle.tmp-x`'s build
        tmp_path / ".bundle.tmp-notes-of-mine",  # not mkdtemp's eight characters
    ]
    for folder in others:
        folder.mkdir()
    (tmp_path / ".bundle.tmp-abcdefgh").write_text("a file, not a build folder")
    export(student_dir, tmp_path / "bundle")
    assert all(folder.is_dir() for folder in others)
    assert (tmp_path / ".bundle.tmp-abcdefgh").is_file()


def test_bundle_modes_follow_the_umask_not_mkdtemps_private_modes(tmp_path: Path):
    import os
    import stat

    student_dir = build_tiny_student(tmp_path / "student")
    old = os.umask(0o022)
    try:
        export(student_dir, tmp_path / "bundle")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "bundle").stat().st_mode) == 0o755
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "bundle").iterdir()}
    assert modes == {name: 0o644 for name in [*BUNDLE_FILES, CARD_NAME]}


def test_bundle_carries_no_absolute_path_of_the_building_machine(tmp_path: Path):
    teacher = {"name": str(tmp_path / "models" / "my-teacher"), "source": "fine-tuned"}
    _export_with_context(tmp_path, teacher, task=str(tmp_path / "data" / "sst2"))
    for name in (CONFIG_NAME, CARD_NAME):
        text = (tmp_path / "bundle" / name).read_text()
        assert str(tmp_path) not in text, name
    config = json.loads((tmp_path / "bundle" / CONFIG_NAME).read_text())
    assert (config["teacher"]["name"], config["task"]) == ("my-teacher", "sst2")


def test_task_name_setting_names_the_task_on_the_card(tmp_path: Path):
    student_dir = build_tiny_run(tmp_path / "run")
    export_student(student_dir, tmp_path / "bundle", ExportSettings(task_name="movie reviews"))
    config = json.loads((tmp_path / "bundle" / CONFIG_NAME).read_text())
    assert config["task"] == "movie reviews"
    assert "- task: `movie reviews`" in (tmp_path / "bundle" / CARD_NAME).read_text()


def test_card_of_a_run_says_distilrnn_fine_tuned_the_teacher_and_from_what(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    student_dir = build_tiny_run(tmp_path / "run")
    monkeypatch.setenv("DATA", str(tmp_path / "data"))
    export_student(student_dir, tmp_path / "bundle")
    card = (tmp_path / "bundle" / CARD_NAME).read_text()
    assert "a teacher that distilrnn fine-tuned on `sst2 (train.tsv)` from `tiny-bert`" in card


def _export_with_context(tmp_path: Path, teacher: dict, task: str) -> dict:
    """A tiny student exported to `tmp_path / "bundle"` with a teacher and task for its card."""
    student_dir = build_tiny_student(tmp_path / "student")
    return export_bundle(
        RNNStudent.load(student_dir),
        student_dir / TOKENIZER_NAME,
        tmp_path / "bundle",
        ExportSettings(),
        labels=LABELS,
        metrics=StudentRecord.read(student_dir).metrics,
        teacher=teacher,
        task=task,
    )
