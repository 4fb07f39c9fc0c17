"""Config loading: defaults, overrides, and errors that name the setting."""

from pathlib import Path

import pytest

from distilrnn.config import ConfigError, describe_settings, load_config


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
