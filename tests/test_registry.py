"""Registries: lazy entry-point discovery, failures recorded, suggestions."""

from __future__ import annotations

import sys

import pytest

from slimkit.components import Component, implementation, params_model
from slimkit.errors import ConfigError, SlimkitError
from slimkit.registry import KINDS, Entry, Registry, plugin_rows, registry


def test_every_kind_has_builtins_from_entry_points():
    for kind in KINDS:
        names = registry(kind).names()
        assert names, f"no built-in {kind}"
        assert all(registry(kind).entry(n).distribution for n in names)


def test_listing_imports_no_implementation():
    before = set(sys.modules)
    plugin_rows(load=True)
    loaded = set(sys.modules) - before
    assert not {m for m in loaded if m.startswith(("torch", "transformers", "litellm"))}


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "prompts"])
def test_every_builtin_has_a_strict_params_model(kind):
    for name in registry(kind).names():
        model = params_model(kind, name)
        assert model.model_config.get("extra") == "forbid"
        for field_name, field in model.model_fields.items():
            if field_name != "kind":
                assert field.description, f"{kind}/{name}.{field_name} has no help text"


def test_unknown_name_suggests():
    with pytest.raises(ConfigError) as info:
        registry("backbones").get("sasrek")
    assert "Did you mean 'sasrec'" in info.value.message


def test_broken_entry_is_recorded_not_raised():
    reg = Registry("backbones")
    reg._entries = {"bad": Entry("backbones", "bad", "no_such_module_xyz:Thing", "bad-plugin", "1.0")}
    rows_error = reg.entry("bad").load()
    assert rows_error is None and "ModuleNotFoundError" in reg.entry("bad").error
    with pytest.raises(SlimkitError, match="failed to load"):
        reg.get("bad")


def test_duplicate_names_name_both_distributions():
    reg = Registry("backbones")
    entry = Entry("backbones", "twin", "slimkit.backbones:SASREC", "plugin-a", "1")
    entry.duplicates.append("plugin-b")
    reg._entries = {"twin": entry}
    with pytest.raises(SlimkitError) as info:
        reg.get("twin")
    assert "plugin-a" in str(info.value) and "plugin-b" in str(info.value)


def test_runtime_registration_and_class_with_params():
    from slimkit.spec import BackboneParams

    class Tiny:
        """A tiny backbone."""

        class Params(BackboneParams):
            pass

    registry("backbones").register("tiny-test", Tiny)
    try:
        assert params_model("backbones", "tiny-test") is Tiny.Params
        assert implementation("backbones", "tiny-test") is Tiny
    finally:
        registry("backbones").unregister("tiny-test")


def test_component_load_imports_lazily():
    comp = registry("fusions").get("none")
    assert isinstance(comp, Component) and comp.impl.startswith("slimkit.fusions")
