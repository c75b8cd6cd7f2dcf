"""deploy/: Kubernetes manifests against the API schemas, the image recipe, the systemd units."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from monitor.cli import build_parser
from monitor.config import Config, load_config, parse_config
from tests.conftest import REPO

DEPLOY = REPO / "deploy"
K8S_VERSION = "1.30.0"


def manifests() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


def pod_specs() -> dict[str, dict[str, Any]]:
    m = manifests()
    return {"run": m["Deployment/rolewatch"]["spec"]["template"]["spec"],
            "once": m["CronJob/rolewatch-once"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]}


@pytest.mark.parametrize("path", sorted((DEPLOY / "k8s").glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_is_valid_for_the_kubernetes_api(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any schema violation


def test_the_validator_rejects_a_typo() -> None:
    bad = manifests()["Deployment/rolewatch"]
    bad["spec"]["template"]["spec"]["containers"][0]["livenessProb"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, K8S_VERSION, strict=True)


def test_configmap_holds_a_valid_rolewatch_config() -> None:
    text = manifests()["ConfigMap/rolewatch-config"]["data"]["rolewatch.toml"]
    import tomllib

    cfg = parse_config(tomllib.loads(text), filename="deploy/k8s/configmap.yaml")
    assert cfg.state.backend == "dynamodb"  # pods have no durable disk
    assert cfg.metrics.enabled and cfg.metrics.address == "0.0.0.0"


def test_pods_wire_config_secret_and_irsa_service_account() -> None:
    m = manifests()
    sa = m["ServiceAccount/rolewatch"]
    assert re.fullmatch(r"arn:aws:iam::\d{12}:role/rolewatch-monitor", sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"])
    assert m["Deployment/rolewatch"]["spec"]["replicas"] == 1
    assert m["Deployment/rolewatch"]["spec"]["strategy"]["type"] == "Recreate"  # never two instances on one state
    assert m["CronJob/rolewatch-once"]["spec"]["concurrencyPolicy"] == "Forbid"
    parser = build_parser()
    for command, spec in pod_specs().items():
        assert spec["serviceAccountName"] == sa["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        [container] = spec["containers"]
        args = parser.parse_args(container["args"])
        assert args.command == command and args.config == "/etc/rolewatch/rolewatch.toml"
        assert container["envFrom"][0]["secretRef"]["name"] in {k.split("/")[1] for k in m if k.startswith("Secret/")}
        volumes = {v["name"]: v for v in spec["volumes"]}
        mount = next(vm for vm in container["volumeMounts"] if vm["mountPath"] == "/etc/rolewatch")
        assert volumes[mount["name"]]["configMap"]["name"] == "rolewatch-config"
    probe = pod_specs()["run"]["containers"][0]["livenessProbe"]["exec"]["command"]
    assert parser.parse_args(probe[1:]).command == "status"


def dockerfile() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            instr, _, rest = line.partition(" ")
            out.append((instr.upper(), rest.strip()))
    return out


def test_dockerfile_pinned_non_root_healthcheck_and_run_entrypoint() -> None:
    steps = dockerfile()
    bases = [rest.split()[0] for instr, rest in steps if instr == "FROM"]
    assert bases and all(re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", b) for b in bases)
    final = steps[max(i for i, (instr, _) in enumerate(steps) if instr == "FROM"):]
    users = [rest for instr, rest in final if instr == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert any(instr == "RUN" and "pip install" in rest and " ." in rest for instr, rest in steps)
    parser = build_parser()
    [health] = [rest for instr, rest in final if instr == "HEALTHCHECK"]
    health_cmd = yaml.safe_load(health.split("CMD", 1)[1].strip())
    assert health_cmd[0] == "rolewatch" and parser.parse_args(health_cmd[1:]).command == "status"
    entry = yaml.safe_load(next(rest for instr, rest in final if instr == "ENTRYPOINT"))
    cmd = yaml.safe_load(next(rest for instr, rest in final if instr == "CMD"))
    assert entry == ["rolewatch"] and parser.parse_args(cmd).command == "run"


def unit_files() -> list[Path]:
    return sorted(p for p in (DEPLOY / "systemd").iterdir() if p.suffix in (".service", ".timer"))


def units() -> dict[str, configparser.ConfigParser]:
    out = {}
    for path in unit_files():
        cp = configparser.ConfigParser(strict=True, interpolation=None)
        cp.optionxform = str  # type: ignore[assignment,method-assign]
        cp.read_string(path.read_text())
        out[path.name] = cp
    return out


def test_systemd_units_run_the_right_commands() -> None:
    u = units()
    parser = build_parser()
    assert parser.parse_args(shlex.split(u["rolewatch.service"]["Service"]["ExecStart"])[1:]).command == "run"
    once = u["rolewatch-once.service"]["Service"]
    assert once["Type"] == "oneshot"
    assert parser.parse_args(shlex.split(once["ExecStart"])[1:]).command == "once"
    assert u["rolewatch-once.timer"]["Timer"]["Unit"] == "rolewatch-once.service"
    for name in ("rolewatch.service", "rolewatch-once.service"):
        assert u[name]["Service"]["User"] != "root" and u[name]["Service"]["NoNewPrivileges"] == "yes"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify(tmp_path: Path) -> None:
    # verify insists the ExecStart binary exists on this machine: point it at one that does
    for path in unit_files():
        (tmp_path / path.name).write_text(path.read_text().replace("/opt/rolewatch/bin/rolewatch", "/bin/true"))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(str(p) for p in tmp_path.iterdir())],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def written_folders(cfg: Config) -> dict[str, Path]:
    """Every local folder a config makes rolewatch write into, by the key that decides it."""
    out = {}
    if cfg.state.backend == "sqlite":
        out["state.path"] = cfg.resolve_path(cfg.state.path).parent  # the lock file goes beside it
    if cfg.schedule.report.enabled and cfg.report.output_dir:
        out["report.output_dir"] = cfg.resolve_path(cfg.report.output_dir)
    for i, n in enumerate(cfg.notifiers):
        if n.type == "file":
            out[f"notifiers[{i}].path"] = cfg.resolve_path(n.path).parent
    return out


def not_writable(cfg: Config, writable: list[Path]) -> list[str]:
    return [f"{key} -> {folder}" for key, folder in written_folders(cfg).items()
            if not any(folder.is_relative_to(w) for w in writable)]


def configmap_config(config_path: str) -> Config:
    import tomllib

    cfg = parse_config(tomllib.loads(manifests()["ConfigMap/rolewatch-config"]["data"]["rolewatch.toml"]),
                       filename="deploy/k8s/configmap.yaml")
    cfg.source_path = config_path  # relative paths resolve against where the pod reads it
    return cfg


@pytest.mark.parametrize("command", ["run", "once"])
def test_pods_write_only_to_writable_volumes(command: str) -> None:
    # readOnlyRootFilesystem, and Kubernetes mounts ConfigMap and Secret volumes read-only whatever
    # the mount says: a report written beside the config fails every run of the report job
    spec = pod_specs()[command]
    [container] = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    writable = [Path(vm["mountPath"]) for vm in container["volumeMounts"]
                if not vm.get("readOnly") and "emptyDir" in volumes[vm["name"]]]
    config_path = build_parser().parse_args(container["args"]).config
    cfg = configmap_config(config_path)
    assert not not_writable(cfg, writable)
    # the check itself: the built-in report folder would sit on the read-only config mount
    cfg.report.output_dir = "reports"
    assert not_writable(cfg, writable) == ["report.output_dir -> /etc/rolewatch/reports"]


def test_systemd_example_config_writes_only_where_the_units_allow() -> None:
    parser = build_parser()
    example = load_config(DEPLOY / "systemd" / "rolewatch.toml")
    for name in ("rolewatch.service", "rolewatch-once.service"):
        service = units()[name]["Service"]
        # ProtectSystem=strict: all but these is read-only to the service
        assert service["ProtectSystem"] == "strict"
        writable = [Path("/var/lib", service["StateDirectory"]), Path("/var/log", service["LogsDirectory"]),
                    *[Path(p) for p in service.get("ReadWritePaths", "").split()]]
        example.source_path = parser.parse_args(shlex.split(service["ExecStart"])[1:]).config
        assert example.source_path == "/etc/rolewatch/rolewatch.toml"
        assert not not_writable(example, writable), name
        # the defaults would put the state and the reports beside the config, in read-only /etc
        defaults = Config(source_path=example.source_path)
        assert not_writable(defaults, writable) == ["state.path -> /etc/rolewatch/.rolewatch",
                                                    "report.output_dir -> /etc/rolewatch/reports"]
