"""The search-space file: every problem reported at once, naming the key; exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from helpers import REPO
from helpers.data import cli

from slimkit.errors import ConfigError
from slimkit.tune.space import load_space, override, yaml_value


@pytest.mark.parametrize(
    "space,expected",
    [
        ({"backbone.hiden_size": {"type": "categorical", "choices": [8]}},
         ["backbone.hiden_size", "Did you mean 'hidden_size'"]),
        ({"train.lr": {"type": "floaty", "low": 0.1, "high": 1}},
         ["train.lr", "`type` must be float, int or categorical"]),
        ({"train.lr": {"type": "float", "low": 0.1}}, ["train.lr.high", "Field required"]),
        ({"train.lr": {"type": "float", "low": "a", "high": 1}}, ["train.lr.low"]),
        ({"train.epochs": {"type": "int", "low": 5, "high": 2}}, ["train.epochs", "below high"]),
        ({"train.lr": {"type": "float", "low": 0.0, "high": 1, "log": True}},
         ["train.lr", "log: true needs low > 0"]),
        ({"eval.ks": {"type": "categorical", "choices": [[5, 10]]}}, ["eval.ks.choices"]),
        ({"train.lr": 0.1}, ["train.lr", "must be a mapping"]),
        ({"lr": {"type": "float", "low": 0.1, "high": 1}}, ["lr: a space key is a dotted"]),
        ({"train.epochs": {"type": "int", "low": 0, "high": 3}},
         ["train.epochs", "greater than or equal to 1", "value 0"]),
        ({"tracking.run_name": {"type": "categorical", "choices": ["a"]}},
         ["tracking.run_name", "not searchable"]),
        ({"train.lr": {"type": "float", "low": 0.1, "high": 1, "extra": 1}},
         ["train.lr.extra", "Extra inputs are not permitted"]),
    ],
)
def test_bad_space_names_the_key(tmp_path, space, expected):
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(ConfigError) as err:
        load_space(path)
    text = str(err.value)
    for part in expected:
        assert part in text, text


def test_every_problem_at_once_and_exit_2(tmp_path, capsys, monkeypatch):
    path = tmp_path / "space.yaml"
    path.write_text("train.lr: {type: float, low: 1, high: 0.5}\nbackbone.hiden_size: "
                    "{type: int, low: 8, high: 16}\n")
    code, _, err = cli(capsys, monkeypatch, "tune", "--space", str(path), "--trials", "1")
    assert code == 2
    assert "2 problems" in err and "train.lr" in err and "backbone.hiden_size" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "train.lr: [\n"])
def test_empty_or_malformed_file_is_exit_2(tmp_path, capsys, monkeypatch, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    code, _, err = cli(capsys, monkeypatch, "tune", "--space", str(path))
    assert code == 2 and "Traceback" not in err


def test_missing_space_file_is_exit_2(tmp_path, capsys, monkeypatch):
    code, _, err = cli(capsys, monkeypatch, "tune", "--space", str(tmp_path / "nope.yaml"))
    assert code == 2 and "Search-space file not found" in err


def test_values_round_trip_through_set():
    from slimkit.spec import parse_override

    for value in (1e-05, 0.001, 64, True, "sasrec", None, 2.5e10):
        assert parse_override(override("a.b", value))[1] == value
    assert yaml_value(1e-05) == "1.0e-05"


def test_shipped_example_space_fits_the_quickstart():
    space = load_space(REPO / "examples" / "tune" / "quickstart-space.yaml",
                       REPO / "examples" / "quickstart.yaml")
    assert space.params and all(k.split(".")[0] in ("train", "backbone", "fusion")
                                for k in space.params)


@pytest.mark.parametrize("args", [["--help"], ["tune", "--help"]])
def test_help_imports_no_tracking_or_tuning_library(args):
    code = (f"import sys, runpy; sys.argv = ['slimkit', *{args!r}]\n"
            "try:\n    runpy.run_module('slimkit', run_name='__main__')\n"
            "except SystemExit:\n    pass\n"
            "heavy = [m for m in ('optuna', 'mlflow', 'tensorboard', 'torch', 'sqlalchemy') "
            "if m in sys.modules]\n"
            "sys.stderr.write('HEAVY=' + ','.join(heavy))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert "tune" in result.stdout
    assert result.stderr.rsplit("HEAVY=", 1)[1].strip() == "", result.stderr
