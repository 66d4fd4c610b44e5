"""Command-line flags come from dataclasses (:mod:`oodbench.cli_config`): the generator's metadata
features, and every sub-command's parser checked against its config dataclass, so a field cannot be
forgotten by the parser and a flag cannot exist without a field."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from oodbench.cli_config import add_command, add_dataclass_arguments, arg, cli_dests, config_from_namespace


def _positive(text: str) -> int:
    if int(text) < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return int(text)


@dataclass(kw_only=True)
class _Group:
    quiet: bool = field(default=False, metadata=arg("no bars", flags=("-q", "--quiet"), action="store_true"))
    level: float = field(default=0.5, metadata=arg("level", metavar="L"))


@dataclass(kw_only=True)
class _Cfg:
    what: str = field(metadata=arg("what", positional=True, choices=["a", "b"]))
    name: str = field(metadata=arg("required: no default"))
    results_dir: Path = field(default=Path("res"), metadata=arg("renamed", flags=("--results",)))
    items: list[str] = field(default_factory=lambda: ["x"], metadata=arg("one or more"))
    pair: tuple[int, int] = field(default=(1, 2), metadata=arg("two ints"))
    two: list[str] | None = field(default=None, metadata=arg("exactly two", nargs=2))
    count: int = field(default=1, metadata=arg("custom type", parse=_positive))
    param: list[str] | None = field(default=None, metadata=arg("repeatable", action="append", metavar="K=V"))
    force: bool = field(default=False, metadata=arg("store_true", action="store_true"))
    color: bool = field(default=True, metadata=arg("--color/--no-color"))
    mode: str | None = field(default=None, metadata=arg("choices", choices=["fast", "slow"]))
    computed: int = field(default=7, metadata=arg(cli=False))
    hook: object = field(default=None, metadata=arg(cli=False))
    group: _Group = field(default_factory=_Group)


def _parser(**kw) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(exit_on_error=False)
    add_dataclass_arguments(p, _Cfg, **kw)
    return p


def test_metadata_features_parse_into_the_dataclass():
    ns = _parser().parse_args(["b", "--name", "n", "--results", "r", "--items", "u", "v", "--pair", "3", "4",
                               "--two", "s", "t", "--count", "5", "--param", "a=1", "--param", "b=2", "--force",
                               "--no-color", "--mode", "slow", "-q", "--level", "0.25"])
    cfg = config_from_namespace(_Cfg, ns, computed=9)
    assert cfg == _Cfg(what="b", name="n", results_dir=Path("r"), items=["u", "v"], pair=(3, 4), two=["s", "t"],
                       count=5, param=["a=1", "b=2"], force=True, color=False, mode="slow", computed=9,
                       group=_Group(quiet=True, level=0.25))
    assert not hasattr(ns, "computed") and not hasattr(ns, "hook")  # cli=False: no flag


def test_defaults_and_refusals():
    p = _parser()
    cfg = config_from_namespace(_Cfg, p.parse_args(["a", "--name", "n"]))
    assert cfg == _Cfg(what="a", name="n")
    assert isinstance(cfg.pair, tuple) and cfg.results_dir == Path("res") and cfg.computed == 7
    for argv in (["a"],                                 # --name is required (no default)
                 ["c", "--name", "n"],                  # positional choices
                 ["a", "--name", "n", "--count", "0"],  # custom type refuses
                 ["a", "--name", "n", "--two", "s"],    # nargs=2
                 ["a", "--name", "n", "--mode", "x"],   # choices
                 ["a", "--name", "n", "--results-dir", "r"]):  # the flag is renamed: --results only
        with pytest.raises((argparse.ArgumentError, SystemExit)):
            p.parse_args(argv)


def test_help_and_names():
    p = _parser(show_defaults=False)
    by_dest = {a.dest: a for a in p._actions}
    assert by_dest["results_dir"].option_strings == ["--results"]
    assert by_dest["quiet"].option_strings == ["-q", "--quiet"]
    assert by_dest["param"].metavar == "K=V" and by_dest["level"].metavar == "L"
    assert by_dest["what"].option_strings == [] and by_dest["name"].required
    assert by_dest["items"].help == "one or more"
    shown = {a.dest: a.help for a in _parser()._actions}  # training style: defaults in the help
    assert shown["items"] == "one or more (default: ['x'])" and shown["mode"].endswith("; omit for none")


def test_suppress_defaults_leaves_absent_flags_off_the_namespace():
    ns = _parser(suppress_defaults=True).parse_args(["a", "--name", "n", "--count", "3"])
    assert vars(ns) == {"what": "a", "name": "n", "count": 3}


def test_cli_dests_and_clashes():
    assert cli_dests(_Cfg) == ["what", "name", "results_dir", "items", "pair", "two", "count", "param", "force",
                               "color", "mode", "quiet", "level"]

    @dataclass
    class Clash:
        quiet: bool = False
        group: _Group = field(default_factory=_Group)

    with pytest.raises(ValueError, match="quiet"):
        add_dataclass_arguments(argparse.ArgumentParser(), Clash)

    @dataclass
    class Unmapped:
        table: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match="cli=False"):
        add_dataclass_arguments(argparse.ArgumentParser(), Unmapped)


def test_arg_refuses_unknown_options():
    with pytest.raises(TypeError):
        arg("x", flag="--y")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="store_true"):
        arg("x", action="count")


# ------------------------------------------------------------------------- the oodbench parsers
CORE = {"list", "run", "evaluate", "leaderboard", "submit", "compare"}


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    """Every leaf sub-command by its full name (``"prepare coco-ood"`` for nested ones)."""
    from oodbench.cli import build_parser

    def leaves(parser: argparse.ArgumentParser, prefix: str) -> dict[str, argparse.ArgumentParser]:
        out: dict[str, argparse.ArgumentParser] = {}
        for a in parser._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, p in a.choices.items():
                    sub = leaves(p, f"{prefix}{name} ")
                    out.update(sub or {f"{prefix}{name}": p})
        return out

    return leaves(build_parser(), "")


def test_every_parser_is_generated_from_its_dataclasses():
    """No hand-written flag anywhere: each leaf sub-command's flags are exactly those of its config
    dataclass(es) (``config_class``: one class, or a tuple added in order), in the same order."""
    subs = _subparsers()
    assert CORE | {"train", "train-segmenter", "prepare coco-ood", "download", "synth", "demo", "fit"} <= set(subs)
    for name, p in sorted(subs.items()):
        classes = p.get_default("config_class")
        assert classes is not None, f"{name}: flags not generated from a dataclass"
        classes = classes if isinstance(classes, tuple) else (classes,)
        dests = [a.dest for a in p._actions if not isinstance(a, argparse._HelpAction)]
        expected = [d for cls in classes for d in cli_dests(cls)]
        assert dests == expected, name  # same flags, same order: no field forgotten, no extra flag


def test_core_flags_all_have_help():
    subs = _subparsers()
    for name in CORE:
        missing = [a.dest for a in subs[name]._actions if not a.help]
        assert not missing, (name, missing)


def test_run_flags_build_the_runner_config():
    """``run``'s namespace becomes RunCommandConfig; every RunConfig field except the two computed
    from other flags is a flag of ``run``, keeping the historical names (``--results`` for results_dir)."""
    from oodbench.command_configs import RunCommandConfig
    from oodbench.run_config import RunConfig

    subs = _subparsers()
    ns = subs["run"].parse_args(["--method", "msp", "--dataset", "a", "b", "--results", "R", "--out", "O",
                                 "--batch-size", "2", "--param", "k=1", "--bootstrap", "5", "-q", "--layout",
                                 "official", "--name", "v2", "--state", "s.safetensors"])
    cmd = config_from_namespace(RunCommandConfig, ns)
    assert cmd.method.method == "msp" and cmd.method.param == ["k=1"] and cmd.dataset == ["a", "b"]
    assert cmd.run == RunConfig(out=Path("O"), results_dir=Path("R"), batch_size=2, name="v2",
                                state=Path("s.safetensors"))
    assert cmd.intervals.bootstrap == 5 and cmd.display.quiet and cmd.data.layout == "official"
    assert {f for f in RunConfig.__dataclass_fields__} - set(cli_dests(RunConfig)) == {"progress", "bootstrap"}
    with pytest.raises(SystemExit):
        subs["run"].parse_args(["--method", "msp", "--dataset", "a", "--name", "a__b"])  # run_name refuses


def test_compare_bootstraps_by_default_and_submit_keeps_its_positional():
    from oodbench.command_configs import SubmitConfig
    from oodbench.compare import CompareConfig

    subs = _subparsers()
    cmp = config_from_namespace(CompareConfig, subs["compare"].parse_args(
        ["--predictions", "p", "--methods", "a", "b", "--dataset", "all"]))
    assert cmp.intervals.bootstrap == 1000 and cmp.intervals.ci == 0.95
    sub = config_from_namespace(SubmitConfig, subs["submit"].parse_args(
        ["smiyc", "--predictions", "p", "--method", "m", "--out", "x.zip"]))
    assert sub.benchmark == "smiyc" and sub.dataset is None


def test_add_command_records_its_dataclass():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_command(sub, "x", _Group, print, help="x")
    ns = parser.parse_args(["x", "-q"])
    assert ns.func is print and ns.config_class is _Group and config_from_namespace(_Group, ns).quiet
