"""Config loading: defaults, overrides, and errors that name the setting."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from distilrnn.config import ConfigError, StudentSettings, load_config
from distilrnn.config_io import describe_settings
from distilrnn.registry import Registry


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_configs_load():
    root = Path(__file__).parents[1] / "configs"
    for path in sorted(root.glob("*.toml")):
        config = load_config(path)
        assert config.variants, path


def test_unknown_key_is_reported_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"teacher\.epoch\b"):
        load_config(write(tmp_path, "[teacher]\nepoch = 3\n"))


def test_bad_value_is_reported_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"student\.rnn"):
        load_config(write(tmp_path, '[student]\nrnn = "transformer"\n'))


def test_wrong_type_is_reported_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"teacher\.batch_size"):
        load_config(write(tmp_path, '[teacher]\nbatch_size = "big"\n'))


def test_bad_variant_value_is_reported_with_the_variant_name(tmp_path):
    text = '[[variant]]\nname = "odd"\nobjective = "hinge"\n'
    with pytest.raises(ConfigError, match=r"odd.*objective"):
        load_config(write(tmp_path, text))


def test_override_replaces_config_value(tmp_path):
    config = load_config(write(tmp_path, "[teacher]\nepochs = 3\n"), ["teacher.epochs=1.5"])
    assert config.teacher.epochs == 1.5


def test_variant_overrides_student_settings():
    config = load_config(None, ["student.hidden_size=32"])
    distilled = next(v for v in config.variants if v.name == "distilled-gru")
    settings = config.student_for(distilled)
    assert (settings.rnn, settings.objective, settings.hidden_size) == ("gru", "mse", 32)


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.toml"):
        load_config(tmp_path / "nope.toml")


def test_unset_environment_variable_in_data_path_is_reported(monkeypatch):
    monkeypatch.delenv("DISTILRNN_TEST_UNSET", raising=False)
    config = load_config(None, ['data.path="$DISTILRNN_TEST_UNSET"'])
    with pytest.raises(ConfigError, match="DISTILRNN_TEST_UNSET"):
        config.data.resolved_path()


def test_every_setting_has_help():
    assert all(help_text for _, _, help_text in describe_settings())


def test_temperature_accepts_auto_and_numbers_only():
    assert load_config(None, ['student.temperature="auto"']).student.temperature == "auto"
    assert load_config(None, ["student.temperature=2"]).student.temperature == 2.0
    with pytest.raises(ConfigError, match=r"student\.temperature"):
        load_config(None, ['student.temperature="hot"'])
    with pytest.raises(ConfigError, match=r"student\.temperature"):
        load_config(None, ["student.temperature=0"])


def test_config_modules_import_without_torch():
    code = (
        "import sys, distilrnn.config, distilrnn.config_io; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("rnn", "rnn", "must be lstm or gru, got 'rnn'"),
        ("pooling", "sum", "must be attention, max, mean or last, got 'sum'"),
        ("num_layers", 5, "must be an integer between 1 and 4, got 5"),
        ("hidden_size", 0, "must be an integer >= 1, got 0"),
        ("head_hidden_size", -1, "must be an integer >= 0, got -1"),
        ("weight_dropout", 1.0, r"must be a number in \[0, 1\), got 1.0"),
    ],
)
def test_settings_and_student_config_check_the_architecture_alike(setting, value, message):
    from distilrnn.student import StudentConfig

    with pytest.raises(ConfigError, match=rf"^student\.{setting}: {message}$"):
        StudentSettings(**{setting: value})
    with pytest.raises(ConfigError, match=rf"^StudentConfig\.{setting}: {message}$"):
        StudentConfig(vocab_size=10, embedding_dim=4, **{setting: value})


def test_registered_names_pass_validation_without_touching_the_builtins():
    registry = Registry("thing", {"a": "os.path:join"})
    registry.register("b", object())
    assert registry.names() == ("a", "b")
    assert registry.problem("b") is None
    assert registry.problem("c") == "must be a or b, got 'c'"
    assert registry.get("a") is os.path.join
    with pytest.raises(ConfigError, match="unknown thing 'c'; registered: a, b"):
        registry.get("c")


def test_one_variant_lookup_names_the_known_variants():
    config = load_config(None)
    assert config.variant("baseline-gru").overrides["rnn"] == "gru"
    with pytest.raises(ConfigError, match=r"nope.*baseline-lstm"):
        config.variant("nope")


def test_loaders_moved_to_config_io_stay_importable_from_config():
    import distilrnn.config
    import distilrnn.config_io

    for name in ("load_config", "config_from_dict", "describe_settings", "student_settings"):
        assert getattr(distilrnn.config, name) is getattr(distilrnn.config_io, name)
    with pytest.raises(AttributeError, match="no_such_name"):
        distilrnn.config.no_such_name  # noqa: B018
