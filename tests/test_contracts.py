"""Public interfaces are documented: CLI flags, config keys, detector names, findings fields, Quick start."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from monitor.cli import build_parser
from monitor.config import (
    AwsConfig,
    CollectionConfig,
    Config,
    DetectorsConfig,
    JobSchedule,
    Notifier,
    ScheduleConfig,
    SlackNotifier,
    Source,
    StateConfig,
    _NotifierBase,
    _SourceBase,
    load_config,
)
from monitor.findings import DETECTORS, FINDING_FIELDS
from monitor.posture.usage import ROLE_LAST_USED, SERVICE_LAST_ACCESSED

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def quick_start_lines() -> list[str]:
    section = README.split("## Quick start", 1)[1]
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]


def test_quick_start_is_exactly_two_commands_demo_then_tests() -> None:
    lines = quick_start_lines()
    assert len(lines) == 2
    assert lines[0].rstrip().endswith("rolewatch demo")
    assert "pytest" in lines[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    script = (REPO / ".ci" / "run").read_text()
    extract = script.split("test_cmd=$(", 1)[1].split(")\n", 1)[0]
    got = subprocess.run(["bash", "-c", extract], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert got.strip() == quick_start_lines()[1]
    assert 'eval "$test_cmd"' in script


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_subcommand_and_flag_is_in_the_readme(name: str) -> None:
    assert f"rolewatch {name}" in README
    sub = _subcommands()[name]
    for action in sub._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                assert opt in README, f"rolewatch {name} {opt} is not documented"


@pytest.mark.parametrize("name", ["rolewatch", *sorted(_subcommands())])
def test_every_argument_has_help_text(name: str) -> None:
    # `--help` is how a new user meets a flag: one without a line there reads as undocumented
    parser = build_parser() if name == "rolewatch" else _subcommands()[name]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, \
            f"rolewatch {name} {label} has no help text"
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                assert choice.help, f"rolewatch {choice.dest} has no summary in `rolewatch --help`"


def test_top_level_flags_are_in_the_commands_section() -> None:
    commands = README.split("## Commands", 1)[1].split("\n## ", 1)[0]
    for action in build_parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and opt != "--help":
                assert f"`{opt}" in commands or f"rolewatch {opt}" in commands, f"rolewatch {opt} is not documented"
    assert "`rolewatch --version`" in commands


def test_version_prints_the_package_version(capsys) -> None:
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"rolewatch {version}\n"


def _leaf_keys(model: type[BaseModel], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        keys.append(name)
        for typ in _model_types(field.annotation):
            keys.extend(_leaf_keys(typ, f"{prefix}{name}."))
    return keys


def _model_types(annotation: Any) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    stack = [annotation]
    while stack:
        t = stack.pop()
        if isinstance(t, type) and issubclass(t, BaseModel):
            out.append(t)
        stack.extend(getattr(t, "__args__", ()) or ())
    return out


def test_every_config_key_is_documented() -> None:
    forms = ("`{k}`", "{k} =", "`[{k}]`", "`[[{k}]]`", "] {k}", ".{k}`", "[{k}]")
    missing = sorted({k for k in _leaf_keys(Config) if not any(f.format(k=k) in README for f in forms)})
    assert missing == []


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_detector_name_is_documented(detector: str) -> None:
    assert f"`{detector}`" in README


@pytest.mark.parametrize("field", FINDING_FIELDS)
def test_every_findings_field_is_documented(field: str) -> None:
    findings_section = README.split("## Findings JSON", 1)[1].split("\n## ", 1)[0]
    assert f"`{field}`" in findings_section


@pytest.mark.parametrize("source", ["cloudtrail", ROLE_LAST_USED, SERVICE_LAST_ACCESSED])
def test_every_unused_role_last_used_source_is_documented(source: str) -> None:
    findings_section = README.split("## Findings JSON", 1)[1].split("\n## ", 1)[0]
    assert f"`{source}`" in findings_section.split("`last_used_source`", 1)[1].split(";", 1)[0]


def _readme_toml_blocks() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", README, re.S)


def _readme_notifiers() -> list[dict[str, Any]]:
    return [n for block in _readme_toml_blocks() for n in tomllib.loads(block).get("notifiers", [])]


@pytest.mark.parametrize("block", _readme_toml_blocks(), ids=lambda b: b.split("\n", 1)[0])
def test_every_readme_toml_example_loads_through_the_config_loader(block: str, tmp_path: Path) -> None:
    # examples name notifiers from the routing example (report.slack_notifiers); give each block those
    data = tomllib.loads(block)
    if "notifiers" not in data:
        block += "".join(f"\n[[notifiers]]\n{_toml_table(n)}" for n in _readme_notifiers())
    path = tmp_path / "rolewatch.toml"
    path.write_text(block)
    load_config(path)


def _toml_table(table: dict[str, Any]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())


# README tables of `| key | default | meaning |`, and the model each section's keys belong to
_DEFAULT_TABLES = {
    "### `[state]`": StateConfig,
    "### `[aws]`": AwsConfig,
    "### `[collection]`": CollectionConfig,
    "### Keys common to every type": SlackNotifier,
    "Configuration keys and defaults:": Config,  # the detectors' table, dotted keys
}


def _documented_defaults() -> list[tuple[str, type[BaseModel], str]]:
    """(key, model, default) of every row whose default is a value: `literal`, none or all (= null)."""
    out = []
    for heading, model in _DEFAULT_TABLES.items():
        section = README.split(heading, 1)[1].split("\n#", 1)[0]
        rows = re.findall(r"^\| `([a-z0-9_.]+)` \| ([^|]+?) \|", section, re.M)
        assert rows, f"no key table under {heading!r}"
        out += [(key, model, default) for key, default in rows
                if default in ("none", "all") or re.fullmatch(r"`[^`]+`", default)]
    return out


def _field_default(model: type[BaseModel], dotted: str) -> Any:
    *parents, leaf = dotted.split(".")
    for name in parents:
        model = _model_types(model.model_fields[name].annotation)[0]
    return model.model_fields[leaf].get_default(call_default_factory=True)


@pytest.mark.parametrize(("key", "model", "default"), _documented_defaults(),
                         ids=[f"{m.__name__}.{k}" for k, m, _ in _documented_defaults()])
def test_every_documented_default_is_the_code_default(key: str, model: type[BaseModel], default: str) -> None:
    expected = None if default in ("none", "all") else tomllib.loads(f"v = {default.strip('`')}")["v"]
    assert _field_default(model, key) == expected


def test_the_documented_schedule_defaults_are_the_code_defaults() -> None:
    section = README.split("### `[schedule]`", 1)[1].split("\n#", 1)[0]
    rows = dict(re.findall(r"^\| `([a-z]+)` \| `([^`]+)` \|", section, re.M))
    assert set(rows) == set(ScheduleConfig.model_fields) - {"misfire_grace_seconds"}
    defaults = ScheduleConfig()
    for job, trigger in rows.items():
        assert getattr(defaults, job) == JobSchedule(**tomllib.loads(trigger)), job
    grace = re.search(r"`misfire_grace_seconds` \(default (\d+)\)", section)
    assert grace is not None and int(grace.group(1)) == defaults.misfire_grace_seconds


def test_detectors_without_a_section_are_the_documented_exceptions() -> None:
    # "[detectors.NAME] ... enabled = false" holds for every detector but the ones the README names
    sections = set(DetectorsConfig.model_fields)
    assert sections <= set(DETECTORS)
    assert all("enabled" in _model_types(DetectorsConfig.model_fields[n].annotation)[0].model_fields for n in sections)
    intro = README.split("## Detectors", 1)[1].split("\n\n", 2)[1]
    named = set(re.findall(r"`([a-z_]+)`", intro.split("except", 1)[1])) & set(DETECTORS)
    assert named == set(DETECTORS) - sections


def _union_members(annotation: Any) -> tuple[type[BaseModel], ...]:
    return typing.get_args(typing.get_args(annotation)[0])  # Annotated[A | B | ..., discriminator]


def _type_rows(heading: str) -> dict[str, str]:
    section = README.split(heading, 1)[1].split("\n#", 1)[0]
    rows: dict[str, str] = {}
    for names, cell in re.findall(r"^\| ((?:`[a-z0-9_]+`(?:, )?)+) \| (.*?) \|", section, re.M):
        rows.update(dict.fromkeys(re.findall(r"`([a-z0-9_]+)`", names), cell))
    return rows


def _own_keys(model: type[BaseModel], base: type[BaseModel]) -> tuple[str, set[str]]:
    kind = typing.get_args(model.model_fields["type"].annotation)[0]
    return kind, set(model.model_fields) - set(base.model_fields) - {"type"}


@pytest.mark.parametrize("model", _union_members(Notifier), ids=lambda m: m.__name__)
def test_every_notifier_key_is_in_its_types_row(model: type[BaseModel]) -> None:
    kind, keys = _own_keys(model, _NotifierBase)
    cell = _type_rows("### Keys per type")[kind]
    assert sorted(k for k in keys if f"`{k}`" not in cell) == []


@pytest.mark.parametrize("model", _union_members(Source), ids=lambda m: m.__name__)
def test_every_source_key_is_in_its_types_row_or_the_push_down_example(model: type[BaseModel]) -> None:
    kind, keys = _own_keys(model, _SourceBase)
    cell = _type_rows("### `[[sources]]`")[kind]
    push_down = README.split("Config keys of the push-down sources", 1)[1].split("```", 2)[1]
    example = next((b for b in push_down.split("[[sources]]") if f'type = "{kind}"' in b), "")
    assert sorted(k for k in keys if f"`{k}`" not in cell and f"\n{k} =" not in example) == []
