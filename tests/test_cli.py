"""The CLI against the settings: every setting is in the TOML, on the command line and in
`distilrnn settings` alike; a user's mistake is one line, a bug keeps its traceback."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import typer
from typer.testing import CliRunner

from distilrnn import cli
from distilrnn.cli import app
from distilrnn.config import SECTIONS, load_config


def _flags(command_name: str) -> set[str]:
    command = typer.main.get_command(app).commands[command_name]
    return {opt for param in command.params for opt in param.opts}


@pytest.mark.parametrize(("command", "section"), [("export", "export"), ("benchmark", "benchmark")])
def test_every_setting_of_a_section_is_a_flag_of_its_command(command, section):
    flags = _flags(command)
    for field in dataclasses.fields(SECTIONS[section]):
        assert "--" + field.name.replace("_", "-") in flags, f"{section}.{field.name}"


def test_settings_lists_every_field_of_every_section():
    result = CliRunner().invoke(app, ["settings"], terminal_width=400)
    assert result.exit_code == 0
    for section, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            assert f"{section}.{field.name}" in result.output


def test_a_flag_overrides_the_configs_section(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("[export]\nquantize = true\nembedding_bits = 4\n")
    assert load_config(config).export.embedding_bits == 4
    values = {"export": {"embedding_bits": 8, "quantize": False}}
    settings = load_config(config, values=values).export
    assert (settings.quantize, settings.embedding_bits) == (False, 8)


def test_a_run_dir_with_quotes_and_backslashes_is_taken_as_it_is(tmp_path):
    odd = str(tmp_path / 'we"ird\\name')
    assert cli._config(None, None, run_dir=odd).run_dir == odd


def _main(monkeypatch, *args):
    monkeypatch.setattr(sys, "argv", ["distilrnn", *args])
    cli.main()


def test_a_users_mistake_is_one_line(monkeypatch, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _main(monkeypatch, "data", "--set", "student.pooling=sum")
    assert exit_info.value.code == 2
    output = capsys.readouterr().out
    assert "config error: student.pooling" in output
    assert "Traceback" not in output


def test_a_bug_keeps_its_traceback(monkeypatch):
    from distilrnn.pipeline import Pipeline

    def broken(self, until="report"):
        raise RuntimeError("a bug")

    monkeypatch.setattr(Pipeline, "run", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        _main(monkeypatch, "data")


def test_a_single_seed_table_says_what_its_test_split_cannot_resolve():
    from distilrnn.cli_tables import resolution_note

    rows = [{"name": "teacher", "seeds": 1, "test_accuracy": 0.87}, {"name": "s", "seeds": 1}]
    note = resolution_note({"rows": rows}, 436)
    assert "436 test texts" in note and "4.5 points" in note
    rows[1]["seeds"] = 3
    assert resolution_note({"rows": rows}, 436) is None
