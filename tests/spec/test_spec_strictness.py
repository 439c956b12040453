"""Configs that YAML or pydantic would accept silently: an empty file, a key written
twice, a boolean where a number belongs; and `--set <section>.kind=` switching a kind."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from slimkit.errors import ConfigError
from slimkit.spec import load_spec


def _write(tmp_path, text: str):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_config_file_is_an_error(tmp_path, text):
    with pytest.raises(ConfigError, match="empty"):
        load_spec(_write(tmp_path, text))


@pytest.mark.parametrize(
    "text, line",
    [
        ("train:\n  epochs: 2\n  epochs: 3\n", 3),
        ("train:\n  epochs: 2\nbackbone:\n  kind: sasrec\ntrain:\n  batch_size: 8\n", 5),
    ],
)
def test_duplicate_yaml_key_is_an_error_naming_the_line(tmp_path, text, line):
    with pytest.raises(ConfigError) as info:
        load_spec(_write(tmp_path, text))
    message = str(info.value)
    assert "duplicate key" in message and f"line {line}" in message


@pytest.mark.parametrize("text, field", [("train:\n  epochs: true\n", "train.epochs"),
                                         ("backbone:\n  hidden_size: false\n", "backbone.hidden_size")])
def test_boolean_where_a_number_belongs_is_an_error(tmp_path, text, field):
    with pytest.raises(ConfigError) as info:
        load_spec(_write(tmp_path, text))
    assert field in str(info.value) and "expected a number" in str(info.value)


def test_cli_exit_2_for_each(tmp_path):
    for text in ("", "train:\n  epochs: 1\n  epochs: 2\n", "train:\n  epochs: true\n"):
        path = _write(tmp_path, text)
        proc = subprocess.run([sys.executable, "-m", "slimkit", "config", "validate", str(path)],
                              check=False, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (text, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr


def test_set_kind_drops_the_old_kinds_keys_with_a_warning(tmp_path, caplog):
    path = _write(tmp_path, "teacher:\n  kind: local\n  max_new_tokens: 64\n  batch_size: 4\n"
                            "  num_users: 12\n")
    with caplog.at_level(logging.WARNING):
        spec = load_spec(path, ["teacher.kind=litellm", "teacher.model=openai/gpt-4o-mini"])
    assert spec.teacher.kind == "litellm" and spec.teacher.num_users == 12
    assert "teacher.max_new_tokens" in caplog.text and "teacher.batch_size" in caplog.text
    # A key given with --set is never dropped: it is validated (and here, refused).
    with pytest.raises(ConfigError, match="teacher.batch_size"):
        load_spec(path, ["teacher.kind=litellm", "teacher.model=x/y", "teacher.batch_size=2"])
    # Without a kind switch, an unknown key stays an error.
    with pytest.raises(ConfigError, match="unknown key"):
        load_spec(path, ["teacher.bogus=1"])
