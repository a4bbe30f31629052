"""One registry for every pluggable family: lazy entries, decorators, aliases, one-line errors; the
surrogates, strategies and mixers all use it, and a job config is checked against it."""

from __future__ import annotations

import sys
import textwrap

import pytest
import yaml

from mixopt.config import load_job_config
from mixopt.errors import ConfigError, MixoptError
from mixopt.registry import Registry


class Widget:
    def __init__(self, size: int = 1, colour: str = "red"):
        self.size, self.colour = size, colour


class Needy:
    def __init__(self, required):
        self.required = required


@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    """A module on sys.path that is not imported yet (a unique name per test)."""
    name = f"mixopt_test_plugin_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""
        class Gadget:
            def __init__(self, speed=1.0):
                self.speed = speed
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_module_class_entries_are_imported_on_first_use(plugin_module):
    reg = Registry("gadget")
    reg.add("fast", f"{plugin_module}:Gadget")
    assert reg.names() == ["fast"] and "fast" in reg and reg.check("fast") == "fast"
    assert plugin_module not in sys.modules  # listing and checking import nothing
    cls = reg.get("fast")
    assert plugin_module in sys.modules and cls.__name__ == "Gadget"
    assert reg.get("fast") is cls
    assert reg.create("fast", speed=3.0).speed == 3.0


def test_decorator_registration_under_several_names():
    reg = Registry("widget")

    @reg.register("widget", "thing")
    class Local(Widget):
        pass

    assert reg.names() == ["widget", "thing"]
    assert reg.get("widget") is Local and reg.get("thing") is Local
    assert isinstance(reg.create("thing", size=2), Local)


def test_modules_listed_for_first_use_are_imported_before_any_lookup(tmp_path, monkeypatch):
    # the mixers' layout: the family's module holds the registry, each plugin module registers into it
    tag = tmp_path.name.replace("-", "_")
    host, plug = f"mixopt_test_host_{tag}", f"mixopt_test_plug_{tag}"
    (tmp_path / f"{host}.py").write_text(textwrap.dedent(f"""
        from mixopt.registry import Registry

        REG = Registry("plugin")
        REG.load_on_first_use("{plug}")
    """))
    (tmp_path / f"{plug}.py").write_text(textwrap.dedent(f"""
        from {host} import REG


        @REG.register("late")
        class Late:
            pass
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        reg = __import__(host).REG
        assert plug not in sys.modules
        assert "late" in reg and reg.names() == ["late"]
        assert plug in sys.modules and reg.get("late").__module__ == plug
    finally:
        sys.modules.pop(host, None)
        sys.modules.pop(plug, None)


def test_aliases_resolve_to_a_registered_name():
    reg = Registry("widget", aliases={"default": "plain"})
    reg.add("plain", Widget)
    assert reg.names() == ["plain"] and reg.names(aliases=True) == ["plain", "default"]
    assert "default" in reg and reg.resolve("default") == "plain"
    assert reg.get("default") is Widget and reg.create("default", size=5).size == 5


def test_unknown_name_is_a_one_line_error_listing_the_choices():
    reg = Registry("widget", aliases={"default": "plain"})
    reg.add("plain", Widget)
    reg.add("fancy", Widget)
    assert "magic" not in reg and 3 not in reg
    with pytest.raises(MixoptError, match="unknown widget 'magic'; choose one of plain, fancy, default") as e:
        reg.get("magic")
    assert "\n" not in str(e.value)
    with pytest.raises(MixoptError, match="unknown widget"):
        reg.create("magic")


def test_errors_use_the_family_error_class():
    reg = Registry("widget", error=ConfigError)
    reg.add("plain", Widget)
    with pytest.raises(ConfigError):
        reg.get("nope")
    with pytest.raises(ConfigError):
        reg.create("plain", bogus=1)


def test_unknown_parameter_names_the_accepted_ones():
    reg = Registry("widget")
    reg.add("plain", Widget)
    with pytest.raises(MixoptError, match=r"widget 'plain': unknown parameter\(s\) \['sise'\]; "
                                          r"accepted: \['colour', 'size'\]") as e:
        reg.create("plain", sise=3)
    assert "\n" not in str(e.value)
    reg.add("needy", Needy)
    with pytest.raises(MixoptError, match="widget 'needy': bad parameters"):
        reg.create("needy")  # a missing required parameter is one line too, not a TypeError


def test_accepts_reads_the_constructor():
    reg = Registry("widget")
    reg.add("plain", Widget)
    assert reg.accepts("plain", "size") and reg.accepts("plain", "colour")
    assert not reg.accepts("plain", "random_state")
    with pytest.raises(MixoptError, match="unknown widget"):
        reg.accepts("nope", "size")


# ------------------------------------------------------------------------------------------ the families
def test_every_family_uses_the_registry():
    from mixopt.online.base import MIXERS, MixerError, make_mixer
    from mixopt.strategies import STRATEGIES, make_strategy
    from mixopt.surrogates import SURROGATES, make_surrogate

    assert all(isinstance(r, Registry) for r in (SURROGATES, STRATEGIES, MIXERS))
    assert {"linear", "lightgbm", "mixing_law", "bimix", "gp", "auto"} <= set(SURROGATES.names())
    assert {"random", "regmix", "mixing_law", "bo"} <= set(STRATEGIES.names())
    assert {"progress", "static", "default"} <= set(MIXERS.names(aliases=True))
    assert type(make_surrogate("linear")) is SURROGATES.get("linear")
    assert type(make_strategy("random", seed=0)) is STRATEGIES.get("random")
    assert type(make_mixer("default", ["a", "b"])) is MIXERS.get("reducible")  # an alias
    with pytest.raises(MixoptError, match="unknown surrogate 'magic'; choose one of .*gp"):
        make_surrogate("magic")
    with pytest.raises(MixoptError, match="unknown strategy 'magic'; choose one of .*regmix"):
        make_strategy("magic")
    with pytest.raises(MixerError, match="unknown mixer 'magic'; choose one of .*progress"):
        make_mixer("magic", ["a", "b"])
    with pytest.raises(MixoptError, match=r"unknown parameter\(s\) \['bogus'\]; accepted: .*max_iter"):
        make_surrogate("gp", bogus=1)


def _job(tmp_path, search: dict):
    job = {"name": "reg", "domains": {"a": str(tmp_path / "a"), "b": str(tmp_path / "b")}, "search": search}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def test_job_config_accepts_registered_names(tmp_path):
    cfg = load_job_config(_job(tmp_path, {"strategy": "regmix", "surrogate": "lightgbm"}))
    assert cfg.search.strategy == "regmix" and cfg.search.surrogate == "lightgbm"


@pytest.mark.parametrize(
    "search, match",
    [({"strategy": "magic"}, r"search\.strategy: .*unknown strategy 'magic'; choose one of .*bo"),
     ({"surrogate": "magic"}, r"search\.surrogate: .*unknown surrogate 'magic'; choose one of .*gp")],
)
def test_job_config_with_an_unknown_name_is_a_one_line_config_error(tmp_path, search, match):
    path = _job(tmp_path, search)
    with pytest.raises(ConfigError, match=match) as e:
        load_job_config(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)
