"""deploy/ecs/: the task definitions and the service against the ECS API model, the schedule template
through cfn-lint, and what the tasks run, read and write against the CLI, the config and the image."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import botocore.session
import pytest
import yaml
from botocore.validate import ParamValidator
from cfnlint.api import lint_file
from cfnlint.decode import decode
from pydantic import BaseModel

from monitor.cli import build_parser
from monitor.config import Config, SecretRef, load_config
from tests.deploy.test_manifests import DEPLOY, dockerfile, not_writable

ECS = DEPLOY / "ecs"
TASKS = {"run": ECS / "task-run.json", "once": ECS / "task-once.json"}
ECS_MODEL = botocore.session.get_session().get_service_model("ecs")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def containers(task: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in task["containerDefinitions"]}


def api_errors(operation: str, params: dict[str, Any]) -> str:
    report = ParamValidator().validate(params, ECS_MODEL.operation_model(operation).input_shape)
    return report.generate_report() if report.has_errors() else ""


@pytest.mark.parametrize("path", sorted(TASKS.values()), ids=lambda p: p.name)
def test_task_definition_is_valid_for_the_ecs_api(path: Path) -> None:
    assert api_errors("RegisterTaskDefinition", load(path)) == ""
    bad = load(path)
    bad["containerDefinitions"][1]["readOnlyRootFilesystem"] = True  # the API spells it readonlyRootFilesystem
    assert "readOnlyRootFilesystem" in api_errors("RegisterTaskDefinition", bad)


def test_service_runs_one_task_of_the_run_definition_never_two() -> None:
    service = load(ECS / "service.json")
    assert api_errors("CreateService", service) == ""
    assert service["taskDefinition"] == load(TASKS["run"])["family"]
    # the state lock refuses a second `run`: a deployment stops the old task before it starts the new
    assert service["desiredCount"] == 1 and service["deploymentConfiguration"]["maximumPercent"] == 100


def monitor_role_name() -> str:
    return decode(DEPLOY / "cloudformation" / "monitor-role.yaml")[0]["Parameters"]["RoleName"]["Default"]


@pytest.mark.parametrize("command", sorted(TASKS))
def test_tasks_run_rolewatch_on_the_config_their_config_container_writes(command: str) -> None:
    task = load(TASKS[command])
    parser = build_parser()
    assert re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/{monitor_role_name()}", task["taskRoleArn"])
    c = containers(task)
    main, init = c["rolewatch"], c["config"]
    args = parser.parse_args(main["command"])
    assert args.command == command
    config_dir = str(Path(args.config).parent)
    # the config container writes the file, exits 0, and only then does rolewatch start
    assert init["essential"] is False and f"> {args.config}" in init["command"][-1]
    assert main["dependsOn"] == [{"containerName": "config", "condition": "SUCCESS"}]
    [init_mount] = [m for m in init["mountPoints"] if m["containerPath"] == config_dir]
    [main_mount] = [m for m in main["mountPoints"] if m["containerPath"] == config_dir]
    assert init_mount["sourceVolume"] == main_mount["sourceVolume"]
    assert init_mount["readOnly"] is False and main_mount["readOnly"] is True
    for container in c.values():
        assert container["image"] == main["image"] and container["readonlyRootFilesystem"] is True
        assert container.get("user", "10001").split(":")[0] not in ("0", "root")
        logs = container["logConfiguration"]
        assert logs["logDriver"] == "awslogs"
        assert {"awslogs-group", "awslogs-region", "awslogs-stream-prefix"} <= set(logs["options"])
    if command == "run":
        health = main["healthCheck"]["command"]
        assert health[:2] == ["CMD", "rolewatch"]
        health_args = parser.parse_args(health[2:])
        assert health_args.command == "status" and health_args.config == args.config


def dockerfile_volumes() -> set[str]:
    return {v for instr, rest in dockerfile() if instr == "VOLUME" for v in yaml.safe_load(rest)}


@pytest.mark.parametrize("command", sorted(TASKS))
def test_tasks_write_only_to_writable_volumes_the_image_owns(command: str) -> None:
    task = load(TASKS[command])
    main = containers(task)["rolewatch"]
    task_volumes = {v["name"] for v in task["volumes"] if "host" not in v}  # task storage, not the host's
    writable = [Path(m["containerPath"]) for m in main["mountPoints"]
                if not m.get("readOnly") and m["sourceVolume"] in task_volumes]
    config = load_config(ECS / "rolewatch.toml")
    config.source_path = build_parser().parse_args(main["command"]).config
    assert not not_writable(config, writable)
    assert Path("/tmp") in writable  # tempfile's first choice
    # the check itself: the built-in defaults put the state and reports beside the read-only config
    assert not_writable(Config(source_path=config.source_path), writable) == [
        "state.path -> /etc/rolewatch/.rolewatch", "report.output_dir -> /etc/rolewatch/reports"]
    # Fargate makes a task volume root's (0755) unless the image declares the path a VOLUME it owns
    for container in task["containerDefinitions"]:
        for m in container["mountPoints"]:
            if not m.get("readOnly"):
                assert m["containerPath"] in dockerfile_volumes(), m


def secret_refs(model: Any) -> list[SecretRef]:
    if isinstance(model, SecretRef):
        return [model]
    if isinstance(model, BaseModel):
        return [r for name in type(model).model_fields for r in secret_refs(getattr(model, name))]
    if isinstance(model, list | tuple):
        return [r for item in model for r in secret_refs(item)]
    return []


def test_no_secret_value_is_inline() -> None:
    config = load_config(ECS / "rolewatch.toml")
    refs = secret_refs(config)
    assert refs, "the example reads the Slack token by reference"
    assert all(r.value is None for r in refs)
    assert all(getattr(n, "url", None) is None for n in config.notifiers)
    for path in TASKS.values():
        for container in load(path)["containerDefinitions"]:
            # values come from SSM / Secrets Manager by ARN, never as plain environment
            assert "environment" not in container
            for secret in container.get("secrets", []):
                assert re.fullmatch(r"arn:aws:(ssm|secretsmanager):[a-z0-9-]+:\d{12}:.+", secret["valueFrom"])


def test_schedule_template_runs_the_once_task() -> None:
    path = ECS / "schedule.yaml"
    matches = lint_file(path)
    assert not matches, "\n".join(str(m) for m in matches)
    template = decode(path)[0]
    target = template["Resources"]["OnceSchedule"]["Properties"]["Target"]
    assert target["EcsParameters"]["TaskCount"] == 1 and target["EcsParameters"]["LaunchType"] == "FARGATE"
    [pass_role] = [s for p in template["Resources"]["SchedulerRole"]["Properties"]["Policies"]
                   for s in p["PolicyDocument"]["Statement"] if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == [{"Ref": "TaskRoleArn"}, {"Ref": "ExecutionRoleArn"}]
