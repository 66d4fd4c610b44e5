from __future__ import annotations

import pytest

from oodbench.registry import PluginValidationError, Registry, RegistryError


def test_register_get_build_and_names():
    reg = Registry("thing")

    @reg.register("b")
    class B:
        def __init__(self, x=1):
            self.x = x

    reg.register("a", obj=dict)
    assert reg.names() == ["a", "b"]
    assert reg.names("b*") == ["b"]
    assert reg.build("b", x=3, y=None if False else None).x == 3  # None kwargs are dropped
    assert "a" in reg and "zzz" not in reg
    assert reg.get("b").provenance["distribution"] == "oodbench"


def test_unknown_name_lists_valid_names():
    reg = Registry("method")
    reg.register("energy", obj=object)
    reg.register("msp", obj=object)
    with pytest.raises(RegistryError, match=r"unknown method 'nope'; available: energy, msp"):
        reg.get("nope")


def test_duplicate_is_an_error():
    reg = Registry("method")
    reg.register("x", obj=int)
    with pytest.raises(RegistryError, match="duplicate method name 'x'"):
        reg.register("x", obj=float)


def test_validator_refuses_bad_plugins():
    def validator(name, obj):
        if not callable(obj):
            raise PluginValidationError(f"{name} is not callable")

    reg = Registry("method", validator=validator)
    with pytest.raises(PluginValidationError, match="bad is not callable"):
        reg.register("bad", obj=3)


def test_builtin_method_registry_validates():
    from oodbench.methods import METHODS, Method, PostHocMethod

    class NoScore(PostHocMethod):
        name = "noscore"

    with pytest.raises(PluginValidationError, match="does not implement score"):
        METHODS.register("noscore", NoScore)

    class NoPredict(Method):
        name = "nopredict"

    with pytest.raises(PluginValidationError, match="does not implement predict"):
        METHODS.register("nopredict", NoPredict)
    with pytest.raises(PluginValidationError, match="subclass of oodbench.methods.Method"):
        METHODS.register("notamethod", dict)


def test_autoload_can_be_disabled(monkeypatch):
    calls = []
    import importlib.metadata as md

    monkeypatch.setattr(md, "entry_points", lambda group=None: calls.append(group) or [])
    monkeypatch.setenv("OODBENCH_DISABLE_PLUGIN_AUTOLOAD", "1")
    reg = Registry("method", entry_point_group="oodbench.methods")
    reg.names()
    assert calls == []
    monkeypatch.delenv("OODBENCH_DISABLE_PLUGIN_AUTOLOAD")
    reg2 = Registry("method", entry_point_group="oodbench.methods")
    reg2.names()
    assert calls == ["oodbench.methods"]
