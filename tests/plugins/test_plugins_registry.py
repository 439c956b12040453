"""Plugin hygiene through real installed packages.

The fixture packages in tests/fixtures/plugins/ are built and installed with pip into
private target folders (never into the shared environment), which are then put on
``sys.path`` (in-process tests) or ``PYTHONPATH`` (CLI subprocesses). slimkit discovers
them through ``importlib.metadata`` exactly as it discovers any installed plugin.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO
from helpers.installs import pip_build_env

from slimkit.components import implementation, params_model
from slimkit.errors import ConfigError, SlimkitError
from slimkit.registry import plugin_rows, registry, reset_registries
from slimkit.spec import spec_json_schema, validate_spec

FIXTURES = REPO / "tests" / "fixtures" / "plugins"
BROKEN_MODULES = ("slimkit_broken_plugin", "slimkit_exits_on_import", "slimkit_broken_impl")




def _pip_install_target(target: Path, *packages: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--disable-pip-version-check", "--target", str(target), *map(str, packages)],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **pip_build_env()},
    )


@pytest.fixture(scope="session")
def plugin_sites(tmp_path_factory) -> dict[str, Path]:
    """``{"main": site with fake + broken plugins, "dup": site with the duplicate}``."""
    root = tmp_path_factory.mktemp("plugin-sites")
    sources = root / "src"
    shutil.copytree(FIXTURES, sources)  # builds write egg-info next to the sources
    main, dup = root / "site-main", root / "site-dup"
    _pip_install_target(main, sources / "slimkit-fake-plugin", sources / "slimkit-broken-plugin")
    _pip_install_target(dup, sources / "slimkit-dup-plugin")
    return {"main": main, "dup": dup}


@pytest.fixture
def on_path(plugin_sites, monkeypatch):
    """Put plugin sites on sys.path for this test; registries are re-read before and after."""

    def add(*names: str, load_plugins: str | None = None) -> None:
        for name in names:
            monkeypatch.syspath_prepend(str(plugin_sites[name]))
        if load_plugins is None:
            monkeypatch.delenv("SLIMKIT_LOAD_PLUGINS", raising=False)
        else:
            monkeypatch.setenv("SLIMKIT_LOAD_PLUGINS", load_plugins)
        importlib.invalidate_caches()
        reset_registries()

    yield add
    reset_registries()
    for module in list(sys.modules):
        if module.split(".")[0] in (*BROKEN_MODULES, "slimkit_fake_plugin", "slimkit_dup_plugin"):
            del sys.modules[module]


def _rows_by_name() -> dict[str, dict]:
    return {row["name"]: row for row in plugin_rows(load=True)}


def _cli(plugin_sites, *args: str, sites=("main",), load_plugins: str | None = None):
    env = dict(os.environ)
    paths = [str(plugin_sites[s]) for s in sites]
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.pop("SLIMKIT_LOAD_PLUGINS", None)
    if load_plugins is not None:
        env["SLIMKIT_LOAD_PLUGINS"] = load_plugins
    return subprocess.run(
        [sys.executable, "-m", "slimkit", *args], env=env, capture_output=True, text=True,
        timeout=120,
    )


# --- in process ------------------------------------------------------------------------
def test_installed_plugin_is_listed_with_distribution_and_version(on_path):
    on_path("main")
    rows = _rows_by_name()
    assert rows["fake-mean"] | {"error": None} == {
        "kind": "backbones", "name": "fake-mean", "distribution": "slimkit-fake-plugin",
        "version": "0.3.1", "status": "ok", "error": None,
    }
    assert rows["fake-brief"]["kind"] == "prompts" and rows["fake-brief"]["status"] == "ok"
    assert rows["sasrec"]["distribution"] == "slimkit" and rows["sasrec"]["status"] == "ok"


def test_installed_plugin_validates_builds_and_meets_the_contract(on_path):
    on_path("main")
    from slimkit.plugins import check_backbone, check_prompt

    spec = validate_spec({"backbone": {"kind": "fake-mean", "hidden_size": 4},
                          "prompt": {"teacher": "fake-brief"}})
    assert spec.backbone.hidden_size == 4
    cls = implementation("backbones", "fake-mean")
    assert cls.__module__ == "slimkit_fake_plugin.model"
    check_backbone(cls, hidden_size=4)
    check_prompt(registry("prompts").get("fake-brief"))
    schema = spec_json_schema()
    titles = [alt["title"] for alt in schema["properties"]["backbone"]["oneOf"]]
    assert "backbone: fake-mean" in titles


def test_broken_plugins_are_recorded_not_fatal(on_path):
    on_path("main")
    rows = _rows_by_name()
    broken = rows["broken-backbone"]
    assert broken["status"] == "failed" and broken["distribution"] == "slimkit-broken-plugin"
    assert broken["error"] == "RuntimeError: slimkit-broken-plugin is broken on purpose"
    exits = rows["exits-on-import"]
    assert exits["status"] == "failed" and "sys.exit() at import" in exits["error"]
    assert rows["fake-mean"]["status"] == "ok"
    with pytest.raises(SlimkitError, match="slimkit-broken-plugin failed to load"):
        registry("backbones").get("broken-backbone")
    with pytest.raises(ConfigError) as info:
        validate_spec({"backbone": {"kind": "broken-backbone"}})
    assert "broken on purpose" in str(info.value)


def test_a_descriptor_whose_implementation_fails_to_import_is_a_user_error(on_path):
    on_path("main")
    assert _rows_by_name()["broken-impl"]["status"] == "ok"  # the light part is fine
    assert params_model("backbones", "broken-impl").__name__ == "BrokenImplParams"
    with pytest.raises(SlimkitError, match=r"slimkit_broken_impl\.model:Model.*broken on purpose"):
        implementation("backbones", "broken-impl")


@pytest.mark.parametrize(
    "setting, present, absent",
    [
        ("", [], ["fake-mean", "broken-backbone", "bert4rec", "catalog-cot"]),
        ("slimkit-fake-plugin", ["fake-mean"], ["broken-backbone", "bert4rec"]),
        ("SLIMKIT_fake_plugin , slimkit-bert4rec", ["fake-mean", "bert4rec"],
         ["broken-backbone", "catalog-cot"]),
    ],
)
def test_load_plugins_chooses_third_party_distributions(on_path, setting, present, absent):
    on_path("main", load_plugins=setting)
    names = set(_rows_by_name())
    assert {"sasrec", "gru4rec", "srgnn", "slim", "slim-cot"} <= names  # built-ins always
    assert set(present) <= names
    assert not set(absent) & names


def test_two_distributions_claiming_one_name_is_an_error_naming_both(on_path):
    on_path("main", "dup")
    entry = registry("backbones").entry("fake-mean")
    claimants = {entry.distribution, *entry.duplicates}
    assert claimants == {"slimkit-fake-plugin", "slimkit-dup-plugin"}
    row = _rows_by_name()["fake-mean"]
    assert row["status"] == "failed"
    assert "slimkit-fake-plugin" in row["error"] and "slimkit-dup-plugin" in row["error"]
    with pytest.raises(ConfigError) as info:
        validate_spec({"backbone": {"kind": "fake-mean"}})
    assert "slimkit-fake-plugin" in str(info.value) and "slimkit-dup-plugin" in str(info.value)


def test_load_plugins_resolves_a_name_clash(on_path):
    on_path("main", "dup", load_plugins="slimkit-fake-plugin")
    entry = registry("backbones").entry("fake-mean")
    assert (entry.distribution, entry.duplicates) == ("slimkit-fake-plugin", [])
    assert _rows_by_name()["fake-mean"]["status"] == "ok"


# --- through the CLI, in subprocesses ------------------------------------------------------
def test_cli_plugins_list_shows_broken_plugins_and_exits_zero(plugin_sites):
    done = _cli(plugin_sites, "plugins", "list", "--json")
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in json.loads(done.stdout)}
    assert rows["broken-backbone"]["status"] == "failed"
    assert "broken on purpose" in rows["broken-backbone"]["error"]
    assert rows["fake-mean"]["version"] == "0.3.1"
    table = _cli(plugin_sites, "plugins", "list")
    assert table.returncode == 0, table.stderr
    assert "failed" in table.stdout and "RuntimeError" in table.stdout
    assert "Traceback" not in table.stdout + table.stderr


def test_cli_other_commands_work_with_a_broken_plugin_installed(plugin_sites, tmp_path):
    for args in (["--help"], ["config", "validate"], ["config", "show", "--json"]):
        done = _cli(plugin_sites, *args)
        assert done.returncode == 0, (args, done.stderr)
    schema = _cli(plugin_sites, "config", "schema")
    assert schema.returncode == 0, schema.stderr
    titles = [a["title"] for a in json.loads(schema.stdout)["properties"]["backbone"]["oneOf"]]
    assert "backbone: fake-mean" in titles and "backbone: broken-backbone" not in titles
    spec = tmp_path / "spec.yaml"
    spec.write_text("backbone:\n  kind: fake-mean\n  hidden_size: 16\n")
    assert _cli(plugin_sites, "config", "validate", str(spec)).returncode == 0


def test_cli_using_a_broken_plugin_is_one_error_panel(plugin_sites):
    done = _cli(plugin_sites, "config", "validate", "--set", "backbone.kind=broken-backbone")
    assert done.returncode == 2
    assert "broken on purpose" in done.stderr and "Traceback" not in done.stderr


def test_cli_duplicate_names_both_distributions(plugin_sites):
    done = _cli(plugin_sites, "plugins", "list", "--json", sites=("main", "dup"))
    row = {r["name"]: r for r in json.loads(done.stdout)}["fake-mean"]
    assert row["status"] == "failed"
    assert "slimkit-fake-plugin" in row["error"] and "slimkit-dup-plugin" in row["error"]
    only = _cli(plugin_sites, "plugins", "list", "--json", sites=("main", "dup"),
                load_plugins="slimkit-fake-plugin")
    assert {r["name"]: r for r in json.loads(only.stdout)}["fake-mean"]["status"] == "ok"


def test_cli_plugins_list_imports_no_torch_with_the_example_plugins(plugin_sites):
    code = (
        "import sys\n"
        "from slimkit.cli import main\n"
        "try:\n    main(['plugins', 'list', '--json'])\n"
        "except SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'transformers', 'litellm', 'sentence_transformers', 'peft'))\n"
        "sys.stderr.write('HEAVY=' + ','.join(heavy) + '\\n')\n"
    )
    env = dict(os.environ, PYTHONPATH=str(plugin_sites["main"]))
    env.pop("SLIMKIT_LOAD_PLUGINS", None)
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    names = {row["name"] for row in json.loads(done.stdout)}
    assert {"bert4rec", "catalog-cot", "fake-mean"} <= names
    assert "HEAVY=\n" in done.stderr, done.stderr
