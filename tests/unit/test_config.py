"""hosts.toml and secrets validation: every bad field gives one clear error naming it."""

import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runbook import config, secrets
from runbook.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "hosts.toml"
GOOD_SECRETS = {"VLLM_API_KEY": "key-12345", "OCR_API": "ocr-45678"}


def example() -> dict:
    return tomllib.loads(EXAMPLE.read_text())


def with_value(section: str, key: str, value) -> dict:
    data = example()
    data[section][key] = value
    return data


def test_example_hosts_toml_is_valid():
    s = config.parse_settings(example())
    assert s.vllm.port == 8001 and s.ai_server.port == 8000
    assert [a.name for a in s.vllm.adapters] == ["easycontract", "checklist"]
    assert s.vllm_base_url == "http://localhost:8001/v1"


@given(st.integers(min_value=1, max_value=65535).filter(lambda p: p != 8001))
def test_any_valid_port_is_accepted(port):
    assert config.parse_settings(with_value("ai_server", "port", port)).ai_server.port == port


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=65536)))
def test_out_of_range_port_names_the_field(port):
    with pytest.raises(ConfigError) as err:
        config.parse_settings(with_value("ai_server", "port", port))
    assert "ai_server.port" in str(err.value) and str(port) in str(err.value)


@given(st.text(min_size=1).filter(lambda s: not s.strip().lstrip("-").isdigit()))
def test_non_integer_port_is_refused(value):
    with pytest.raises(ConfigError, match=r"vllm\.port"):
        config.parse_settings(with_value("vllm", "port", value))


@given(st.sampled_from(["https://b.example.com/api/v1", "https://b.example.com/api/v1/", "http://x/v1"]))
def test_callback_url_with_v1_is_refused(url):
    with pytest.raises(ConfigError, match=r"backend_callback_base_url: must not end with /v1"):
        config.parse_settings(with_value("ai_server", "backend_callback_base_url", url))


@given(st.from_regex(r"\Ahttps://[a-z]{1,12}\.example\.com/[a-z]{1,8}\Z"))
def test_callback_url_without_v1_is_accepted(url):
    s = config.parse_settings(with_value("ai_server", "backend_callback_base_url", url))
    assert s.ai_server.backend_callback_base_url == url


@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=20).filter(
        lambda k: k not in config.Settings.model_fields
    )
)
def test_unknown_top_level_key_is_refused(key):
    data = example()
    data[key] = 1
    with pytest.raises(ConfigError, match="Extra inputs are not permitted"):
        config.parse_settings(data)


def test_typo_in_a_table_names_it():
    data = example()
    data["vllm"]["gpu_memory_utilisation"] = 0.8
    with pytest.raises(ConfigError, match=r"vllm\.gpu_memory_utilisation: Extra inputs"):
        config.parse_settings(data)


def test_all_problems_reported_at_once():
    data = example()
    data["vllm"]["port"] = 0
    data["ai_server"]["dir"] = "relative/path"
    data["gcp"]["boot_disk_gb"] = "big"
    with pytest.raises(ConfigError) as err:
        config.parse_settings(data)
    text = str(err.value)
    assert "3 invalid setting(s)" in text
    for field in ("vllm.port", "ai_server.dir", "gcp.boot_disk_gb"):
        assert field in text


def test_same_port_for_both_services_is_refused():
    with pytest.raises(ConfigError, match="both 8000"):
        config.parse_settings(with_value("vllm", "port", 8000))


def test_duplicate_adapter_names_are_refused():
    data = example()
    data["vllm"]["adapters"][1]["name"] = "easycontract"
    with pytest.raises(ConfigError, match="adapter names must be unique"):
        config.parse_settings(data)


@given(st.sampled_from(["", " ", "\t"]))
def test_empty_api_key_is_refused_b15(blank):
    with pytest.raises(ConfigError, match=r"VLLM_API_KEY: must not be empty \(guide B-15"):
        config.load_secrets(
            config.parse_settings(example()), Path("/nonexistent"), {**GOOD_SECRETS, "VLLM_API_KEY": blank}
        )


def test_missing_secrets_are_listed_by_env_name(tmp_path):
    with pytest.raises(ConfigError) as err:
        config.load_secrets(config.parse_settings(example()), tmp_path, {})
    assert "VLLM_API_KEY: is not set" in str(err.value) and "OCR_API: is not set" in str(err.value)


def test_secrets_file_must_be_private(tmp_path):
    f = tmp_path / "secrets.env"
    f.write_text("VLLM_API_KEY=abc-1234\nOCR_API=def-5678\n")
    f.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        config.load_secrets(config.parse_settings(example()), tmp_path, {})
    f.chmod(0o600)
    s = config.load_secrets(config.parse_settings(example()), tmp_path, {})
    assert s.vllm_api_key.get_secret_value() == "abc-1234"


def test_environment_wins_over_file_and_secret_is_masked(tmp_path):
    secrets.clear()
    f = tmp_path / "secrets.env"
    f.write_text("export VLLM_API_KEY='from-file'\nOCR_API=ocr-file\n")
    os.chmod(f, 0o600)
    s = config.load_secrets(config.parse_settings(example()), tmp_path, {"VLLM_API_KEY": "from-env-xyz"})
    assert s.vllm_api_key.get_secret_value() == "from-env-xyz"
    assert "from-env-xyz" not in repr(s)
    assert secrets.mask("key=from-env-xyz ocr=ocr-file") == f"key={secrets.MASK} ocr={secrets.MASK}"


@settings(max_examples=50)
@given(st.lists(st.text(min_size=8, max_size=12), min_size=1, max_size=4), st.text(max_size=40))
def test_mask_never_leaks_a_registered_secret(values, text):
    secrets.clear()
    secrets.register(*values)
    masked = secrets.mask(text + "".join(values))
    longest = max(values, key=len)
    assert longest not in masked or longest in secrets.MASK
    secrets.clear()


def test_load_reports_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        config.load(tmp_path / "nope.toml", GOOD_SECRETS)
    bad = tmp_path / "hosts.toml"
    bad.write_text("[vllm\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        config.load(bad, GOOD_SECRETS)


def test_pd_standard_boot_disk_on_g2_is_refused_with_the_reason():
    with pytest.raises(ValueError) as err:
        config.Settings.model_validate({"gcp": {"machine_type": "g2-standard-8", "boot_disk_type": "pd-standard"}})
    assert "boot_disk_type 'pd-standard' cannot be used with g2-standard-8" in str(err.value)
    assert "pd-balanced, pd-ssd, hyperdisk-ml, hyperdisk-throughput" in str(err.value)
    ok = config.Settings.model_validate({"gcp": {"machine_type": "n1-standard-4", "boot_disk_type": "pd-standard"}})
    assert ok.gcp.boot_disk_type == "pd-standard"


def test_service_account_defaults_to_gclouds_and_none_is_allowed():
    g = config.Settings.model_validate({}).gcp
    assert g.service_account == "default" and len(g.scopes) == 7
    assert "https://www.googleapis.com/auth/logging.write" in g.scopes
    assert config.Settings.model_validate({"gcp": {"service_account": "none"}}).gcp.service_account == "none"
