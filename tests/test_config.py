from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.config import ConfigError, load_config


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "rolewatch.toml"
    p.write_text(text)
    return p


def test_missing_field_names_file_and_dotted_key(tmp_path: Path) -> None:
    p = write(tmp_path, '[[sources]]\ntype = "local"\npath = "x"\n[[sources]]\ntype = "s3"\n')
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}: sources[1].bucket: field required"


def test_unknown_key_is_an_error_not_ignored(tmp_path: Path) -> None:
    p = write(tmp_path, "[detectors.off_hours]\nbusiness_hour = '09:00-17:00'\n")
    with pytest.raises(ConfigError, match=r"detectors\.off_hours\.business_hour: unknown key"):
        load_config(p)


def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""))
    assert cfg.state.path == ".rolewatch/state.db"
    assert cfg.collection.initial_lookback_hours == 24
    assert cfg.collection.overlap_minutes == 20
    assert cfg.detectors.failed_assume_role.window_minutes == 10
    assert cfg.detectors.failed_assume_role.burst_threshold == 5
    assert cfg.detectors.unusual_source_ip.learning_days == 14
    assert cfg.detectors.off_hours.business_hours == "08:00-18:00"
    assert cfg.detectors.unused_role.unused_days == 90
    assert cfg.detectors.long_session.max_duration_seconds == 3600


def test_relative_state_path_resolves_beside_the_config(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[state]\npath = "st/state.db"\n'))
    assert cfg.resolve_path(cfg.state.path) == tmp_path / "st" / "state.db"


def test_check_config_exit_codes_and_masking(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, '[organization]\nexternal_id = { value = "hunter2-extid" }\n')
    assert main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert "hunter2-extid" not in out and "***" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[aws]\nregion = 5\n")
    assert main(["check-config", str(bad)]) == 2
    assert "aws.region" in capsys.readouterr().err


def test_check_config_masks_inline_webhook_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # an incoming-webhook URL is the credential itself: its path (or query) is all it takes to post
    slack_hook = "https://hooks.slack.com/services/T0001/B0001/XXXXsecretXXXX"
    siem_hook = "https://siem.example.com/ingest?token=abcd1234secret"
    p = write(tmp_path, f'[[notifiers]]\ntype = "slack_webhook"\nurl = "{slack_hook}"\n'
                        f'[[notifiers]]\ntype = "webhook"\nurl = "{siem_hook}"\n'
                        '[[notifiers]]\ntype = "webhook"\nurl_env = "HOOK_URL"\n')
    assert main(["check-config", str(p)]) == 0
    out = capsys.readouterr().out
    assert slack_hook not in out and "XXXXsecretXXXX" not in out and "abcd1234secret" not in out
    notifiers = json.loads(out)["notifiers"]
    assert [n.get("url") for n in notifiers] == ["***", "***", None]
    assert notifiers[2]["url_env"] == "HOOK_URL"  # the name of the variable is not the secret


@pytest.mark.parametrize(("text", "line"), [
    ('[[sources]]\npath = "trail"\n',
     "sources[0].type: field required (one of local, s3, cloudwatch_logs, lookup_events, athena, "
     "cloudtrail_lake, logs_insights)"),
    ('[[sources]]\ntype = "s4"\nbucket = "b"\n',
     "sources[0].type: unknown type 's4' (one of local, s3, cloudwatch_logs, lookup_events, athena, "
     "cloudtrail_lake, logs_insights)"),
    ('[[notifiers]]\ntype = "slak"\n',
     "notifiers[0].type: unknown type 'slak' (one of slack, slack_webhook, webhook, file, console, sns)"),
    ('[organization]\nenabled = true\n[[sources]]\ntype = "lookup_events"\naccounts = ["1234"]\n',
     "sources[0].accounts: '1234' is not a 12-digit account id in quotes"),
    ('[organization]\nenabled = true\n[[sources]]\ntype = "lookup_events"\naccounts = [12345678901]\n',
     "sources[0].accounts: 12345678901 is not a 12-digit account id in quotes (a TOML number drops leading zeros)"),
    ('[[sources]]\ntype = "lookup_events"\naccounts = "org"\n',
     "sources[0].accounts: expected \"organization\" or a list of 12-digit account ids, not 'org'"),
    # accepted, such a value never matched anything: an s3 account with no trail, an allowlist
    # entry or trusted account that silences nothing
    ('[[sources]]\ntype = "s3"\nbucket = "trail"\naccounts = ["111122223333", "11112222333"]\n',
     "sources[0].accounts[1]: '11112222333' is not a 12-digit account id in quotes"),
    ('[organization]\naccounts = ["prod"]\n',
     "organization.accounts[0]: 'prod' is not a 12-digit account id in quotes"),
    ('[detectors.trust_policy]\ntrusted_accounts = [999999999999]\n',
     "detectors.trust_policy.trusted_accounts[0]: 999999999999 is not a 12-digit account id in quotes "
     "(a TOML number drops leading zeros)"),
    ('[detectors.trust_policy]\norganization_accounts = ["o-abc123def4"]\n',
     "detectors.trust_policy.organization_accounts[0]: 'o-abc123def4' is not a 12-digit account id in quotes"),
    ('[[allowlist]]\naccount = "1111-2222-3333"\nowner = "a"\nreason = "b"\nexpires = "2030-01-01"\n',
     "allowlist[0].account: '1111-2222-3333' is not a 12-digit account id in quotes"),
    ('[report]\nslack_notifiers = ["security"]\n',
     "report.slack_notifiers: no notifier named 'security' (known: none)"),
])
def test_type_and_union_mistakes_read_as_one_line_naming_the_key(tmp_path: Path, text: str, line: str) -> None:
    # not pydantic's wording ("Unable to extract tag using discriminator", one error per union branch
    # with `literal['organization']` in the key, "(root)" for checks across sections)
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == f"{p}: {line}"


def test_lookup_events_accounts_still_take_organization_or_ids(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[organization]\nenabled = true\n'
                                      '[[sources]]\ntype = "lookup_events"\naccounts = ["012345678901"]\n'
                                      '[[sources]]\ntype = "lookup_events"\nname = "org"\naccounts = "organization"\n'))
    assert [s.accounts for s in cfg.sources] == [["012345678901"], "organization"]


def test_account_ids_with_a_leading_zero_are_kept_as_written(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, '[organization]\naccounts = ["012345678901"]\n'
                                      '[[sources]]\ntype = "s3"\nbucket = "trail"\naccounts = ["012345678901"]\n'
                                      '[detectors.trust_policy]\ntrusted_accounts = ["012345678901"]\n'
                                      '[[allowlist]]\naccount = "012345678901"\nowner = "a"\nreason = "b"\n'
                                      'expires = "2030-01-01"\n'))
    assert cfg.organization.accounts == cfg.sources[0].accounts == ["012345678901"]
    assert cfg.detectors.trust_policy.trusted_accounts == ["012345678901"]
    assert cfg.allowlist[0].account == "012345678901"


def test_check_config_warns_of_unknown_regions_and_missing_local_paths(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "trail").mkdir()
    p = write(tmp_path, '[aws]\nregion = "us-est-1"\n'
                        '[organization]\nregions = ["eu-west-1", "eu-wst-1"]\n'
                        '[[sources]]\ntype = "local"\npath = "trial"\n'
                        '[[sources]]\ntype = "local"\npath = "trail"\n'
                        '[[sources]]\ntype = "s3"\nbucket = "b"\nregions = ["ap-southeast-2", "ap-sotheast-2"]\n')
    assert main(["check-config", str(p)]) == 0  # valid, only suspicious
    err = capsys.readouterr().err.splitlines()
    warned = [line.removeprefix(f"warning: {p}: ").split(":")[0] for line in err if line.startswith("warning: ")]
    assert warned == ["aws.region", "organization.regions[1]", "sources[2].regions[1]", "sources[0].path"]
    assert f"sources[0].path: {tmp_path / 'trial'} does not exist" in "\n".join(err)
    assert err[-1] == f"{p}: OK"


def test_check_config_takes_any_region_behind_an_endpoint_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # moto and LocalStack accept made-up region names
    p = write(tmp_path, '[aws]\nregion = "local-test-1"\nendpoint_url = "http://127.0.0.1:5000"\n')
    assert main(["check-config", str(p)]) == 0
    assert "warning" not in capsys.readouterr().err
