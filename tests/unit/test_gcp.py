"""runbook.gcp: clients, the retry policy, waiting on operations, and explain()."""

from __future__ import annotations

import logging
import socket
import time

import pytest
import requests
import tenacity
from google.api_core import exceptions as gexc
from google.auth.credentials import AnonymousCredentials
from google.cloud import compute_v1
from hypothesis import given
from hypothesis import strategies as st

from runbook import gcp

PROJECT = "demo-project"
ZONE = "asia-northeast3-a"
FAMILY = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-580"


def vm(name="vm1", zone=ZONE, size=200) -> dict:
    return {
        "name": name,
        "machine_type": f"zones/{zone}/machineTypes/g2-standard-4",
        "guest_accelerators": [
            {"accelerator_type": f"zones/{zone}/acceleratorTypes/nvidia-l4", "accelerator_count": 1}
        ],
        "disks": [
            {
                "boot": True,
                "auto_delete": True,
                "initialize_params": {
                    "disk_size_gb": size,
                    "disk_type": f"zones/{zone}/diskTypes/pd-ssd",
                    "source_image": FAMILY,
                },
            }
        ],
        "scheduling": {"on_host_maintenance": "TERMINATE", "automatic_restart": True},
        "tags": {"items": ["ai-server", "monitoring"]},
        "network_interfaces": [{"access_configs": [{"name": "External NAT", "type_": "ONE_TO_ONE_NAT"}]}],
    }


def firewall(name="allow-ai-server-ports") -> dict:
    return {"name": name, "allowed": [{"I_p_protocol": "tcp", "ports": ["8000", "8001"]}], "target_tags": ["ai-server"]}


def api_error(code: int, reason: str, message: str) -> gexc.GoogleAPICallError:
    return gexc.from_http_status(code, message, errors=[{"message": message, "domain": "global", "reason": reason}])


# -- clients ------------------------------------------------------------------------------------


def test_clients_use_rest_and_the_given_endpoint(server):
    api = gcp.clients(server.url)
    for name in gcp.SERVICES:
        client = getattr(api, name).raw
        assert client.transport.kind == "rest"
        assert client.transport._host == server.url
        assert isinstance(client.transport._credentials, AnonymousCredentials)
    assert api.endpoint == server.url


def test_clients_without_endpoint_target_google():
    api = gcp.clients(None, credentials=AnonymousCredentials())  # the real project passes None: ADC
    assert api.instances.raw.transport._host == "https://compute.googleapis.com"


def test_lists_are_plain_lists_and_mutations_return_operations(api):
    op = api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    assert isinstance(op, compute_v1.Operation)
    api.wait(op)
    listed = api.firewalls.list(project=PROJECT)
    assert isinstance(listed, list) and [f.name for f in listed] == ["allow-ai-server-ports"]


def test_mutations_carry_a_request_id(server, api):
    api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall()))
    api.wait(api.firewalls.delete(request={"project": PROJECT, "firewall": "allow-ai-server-ports"}))
    request_ids = server.sim.store.snapshot()["projects"][PROJECT]["request_ids"]
    assert len(request_ids) == 2


def test_paging_fetches_every_page(server, api):
    for i in range(7):
        api.firewalls.insert(project=PROJECT, firewall_resource=firewall(f"fw-{i}"))
    listed = api.firewalls.list(request={"project": PROJECT, "max_results": 3})
    assert [f.name for f in listed] == [f"fw-{i}" for i in range(7)]


# -- retries ------------------------------------------------------------------------------------


def test_every_call_succeeds_through_30_percent_injected_errors(server, api, caplog):
    server.sim.set_faults(error_rate=0.3, error_codes=[429, 503], seed=20260204)
    caplog.set_level(logging.WARNING, logger="runbook.gcp")
    started = time.monotonic()

    api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall()))
    assert api.firewalls.get(project=PROJECT, firewall="allow-ai-server-ports").priority == 1000
    image = api.images.get_from_family(
        project="ubuntu-os-accelerator-images", family="ubuntu-accelerator-2204-amd64-with-nvidia-580"
    )
    assert image.status == "READY"
    assert any(s for s, scoped in api.accelerator_types.aggregated_list(project=PROJECT) if scoped.accelerator_types)
    api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm()))
    assert api.instances.get(project=PROJECT, zone=ZONE, instance="vm1").status == "RUNNING"
    api.wait(api.instances.stop(project=PROJECT, zone=ZONE, instance="vm1"))
    api.wait(api.instances.start(project=PROJECT, zone=ZONE, instance="vm1"))
    regions = api.regions.get(project=PROJECT, region="asia-northeast3")
    assert {q.metric: q.usage for q in regions.quotas}["NVIDIA_L4_GPUS"] == 1.0
    for _ in range(20):
        api.disks.list(project=PROJECT, zone=ZONE)

    retries = [r for r in caplog.records if "retry" in r.getMessage() or "trying again" in r.getMessage()]
    assert len(retries) >= 5  # the faults really happened
    assert any("429" in r.getMessage() for r in retries) and any("503" in r.getMessage() for r in retries)
    assert time.monotonic() - started < 15
    # each insert went through exactly once, retries notwithstanding
    assert [i.name for i in api.instances.list(project=PROJECT, zone=ZONE)] == ["vm1"]


def test_connection_resets_are_retried(server, api):
    server.sim.set_faults(reset_rate=0.3, seed=7)
    for _ in range(15):
        assert api.regions.get(project=PROJECT, region="asia-northeast3").name == "asia-northeast3"
    api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall()))


def test_retries_stop_after_the_attempt_cap(server, caplog):
    policy = gcp.RetryPolicy(attempts=4, initial=0.01, maximum=0.02, jitter=0.0, timeout=5)
    api = gcp.clients(server.url, gcp.bearer(server.token), policy=policy)
    server.sim.set_faults(fail_next=[{"path": "/regions/", "status": 503, "count": 10}])
    caplog.set_level(logging.WARNING, logger="runbook.gcp")
    with pytest.raises(gexc.ServiceUnavailable):
        api.regions.get(project=PROJECT, region="asia-northeast3")
    assert len(caplog.records) == 3  # four attempts, three retries
    assert server.sim.faults.fail_next[0].count == 6


def test_permanent_errors_are_not_retried(server, api, caplog):
    caplog.set_level(logging.WARNING, logger="runbook.gcp")
    server.sim.set_faults(fail_next=[{"path": "/regions/", "status": 403, "count": 2}])
    with pytest.raises(gexc.Forbidden):
        api.regions.get(project=PROJECT, region="asia-northeast3")
    with pytest.raises(gexc.NotFound):
        api.instances.get(project=PROJECT, zone=ZONE, instance="nope")
    assert not caplog.records
    assert server.sim.faults.fail_next[0].count == 1


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (api_error(429, "rateLimitExceeded", "Rate Limit Exceeded"), True),
        (api_error(500, "backendError", "x"), True),
        (api_error(502, "backendError", "x"), True),
        (api_error(503, "backendError", "x"), True),
        (api_error(504, "backendError", "x"), True),
        (api_error(403, "rateLimitExceeded", "Rate Limit Exceeded"), True),
        (api_error(403, "forbidden", "Required 'compute.instances.create' permission"), False),
        (api_error(400, "badRequest", "x"), False),
        (api_error(404, "notFound", "x"), False),
        (api_error(409, "alreadyExists", "x"), False),
        (api_error(412, "conditionNotMet", "x"), False),
        (requests.exceptions.ConnectionError("reset"), True),
        (requests.exceptions.ReadTimeout("slow"), True),
        (ConnectionResetError(104, "Connection reset by peer"), True),
        (ValueError("bug"), False),
    ],
)
def test_is_transient(exc, transient):
    assert gcp.is_transient(exc) is transient


@given(st.integers(min_value=1, max_value=60))
def test_backoff_is_bounded(attempt):
    policy = gcp.RetryPolicy(initial=0.5, maximum=16.0, jitter=1.0)
    state = tenacity.RetryCallState(retry_object=policy.retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    delay = policy.backoff(state)
    assert 0 < delay <= 16.0
    if attempt <= 4:
        assert 0.5 * 2 ** (attempt - 1) <= delay <= 0.5 * 2 ** (attempt - 1) + 1.0


# -- waiting ------------------------------------------------------------------------------------


def test_wait_reports_progress_and_returns_done(server, api):
    # Phases long enough that a poll lands in each, even on a loaded machine.
    server.sim.set_faults(op_pending_s=0.5, op_running_s=1.5)
    seen = []
    op = api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
    done = gcp.wait(op, api, progress=lambda o: seen.append((compute_v1.Operation.Status(o.status).name, o.progress)))
    assert done.status == compute_v1.Operation.Status.DONE
    assert seen[0] == ("PENDING", 0) and seen[-1] == ("DONE", 100) and ("RUNNING", 0) in seen


def test_wait_accepts_the_clients_extended_operation(api):
    extended = api.firewalls.raw.insert(project=PROJECT, firewall_resource=firewall(), retry=None)
    assert gcp.wait(extended, api).status == compute_v1.Operation.Status.DONE


def test_wait_gives_up_at_its_deadline(server, api):
    server.sim.set_faults(op_running_s=5)
    op = api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    started = time.monotonic()
    with pytest.raises(gcp.OperationTimeout) as err:
        api.wait(op, timeout=0.4)
    assert time.monotonic() - started < 2
    assert "Timed out after 0.4s" in gcp.explain(err.value)


def test_wait_survives_transient_errors_on_the_operation(server, api):
    op = api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
    server.sim.set_faults(fail_next=[{"path": "/operations/", "status": 503, "count": 3}])
    assert api.wait(op).status == compute_v1.Operation.Status.DONE


# -- explain ------------------------------------------------------------------------------------


def test_explain_quota_inside_operation(server, api):
    server.sim.seed_disk(PROJECT, "asia-northeast3-b", "old-data", 100)
    with pytest.raises(gcp.OperationError) as err:
        api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm(size=200)))
    text = gcp.explain(err.value)
    assert "SSD_TOTAL_GB" in text and "250" in text and "asia-northeast3" in text
    assert "gcloud compute disks list" in text


def test_explain_synchronous_quota_error(server, api):
    server.sim.set_faults(quota_errors="sync", quota_limits={"NVIDIA_L4_GPUS": 0})
    with pytest.raises(gexc.Forbidden) as err:
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm())
    text = gcp.explain(err.value)
    assert "NVIDIA_L4_GPUS" in text and "limited to 0 in region asia-northeast3" in text


def test_explain_stockout_names_the_zone(server, api):
    server.sim.set_faults(stockout_zones=[ZONE])
    with pytest.raises(gcp.OperationError) as err:
        api.wait(api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=vm()))
    text = gcp.explain(err.value)
    assert f"Zone {ZONE} has no capacity" in text and "asia-northeast3-b" in text


def test_explain_deep_learning_image_on_g2(api):
    body = vm()
    body["disks"][0]["initialize_params"]["source_image"] = (
        "projects/deeplearning-platform-release/global/images/family/common-cu128-ubuntu-2204-nvidia-570"
    )
    with pytest.raises(gexc.BadRequest) as err:
        api.instances.insert(project=PROJECT, zone=ZONE, instance_resource=body)
    assert "ubuntu-os-accelerator-images" in gcp.explain(err.value) and "B-1" in gcp.explain(err.value)


def test_explain_missing_image_family(api):
    with pytest.raises(gexc.NotFound) as err:
        api.images.get_from_family(project="ubuntu-os-accelerator-images", family="ubuntu-accelerator-2004-gone")
    text = gcp.explain(err.value)
    assert "Image family ubuntu-accelerator-2004-gone was not found" in text


def test_explain_not_found_and_already_exists(api):
    with pytest.raises(gexc.NotFound) as missing:
        api.instances.get(project=PROJECT, zone=ZONE, instance="nope")
    assert gcp.explain(missing.value).startswith(f"Not found: projects/{PROJECT}/zones/{ZONE}/instances/nope.")
    api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=firewall()))
    with pytest.raises(gexc.Conflict) as conflict:
        api.firewalls.insert(project=PROJECT, firewall_resource=firewall())
    assert gcp.explain(conflict.value).startswith(
        f"Already exists: projects/{PROJECT}/global/firewalls/allow-ai-server-ports."
    )


def test_explain_permission_denied_says_what_to_check(server, api):
    server.sim.set_faults(fail_next=[{"path": "/instances", "status": 403}])
    with pytest.raises(gexc.Forbidden) as err:
        api.instances.list(project=PROJECT, zone=ZONE)
    text = gcp.explain(err.value)
    assert text.startswith(f"Permission denied on project {PROJECT}")
    assert "roles/compute.admin" in text and "Application Default Credentials" in text


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (api_error(412, "conditionNotMet", "Supplied fingerprint does not match"), "fingerprint mismatch"),
        (api_error(401, "required", "Login Required."), "gcloud auth application-default login"),
        (api_error(403, "accessNotConfigured", "Compute Engine API has not been used"), "services enable compute"),
        (api_error(503, "backendError", "Internal error."), "even after retries"),
        (api_error(400, "resourceNotReady", "The resource 'x' is not ready"), "wait and retry"),
    ],
)
def test_explain_other_api_errors(exc, expected):
    assert expected in gcp.explain(exc)


def test_explain_unreachable_endpoint():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    api = gcp.clients(f"http://127.0.0.1:{port}", policy=gcp.RetryPolicy(attempts=2, initial=0.01, jitter=0))
    with pytest.raises(requests.exceptions.ConnectionError) as err:
        api.regions.get(project=PROJECT, region="asia-northeast3")
    assert gcp.explain(err.value).startswith("Cannot reach the Compute Engine API")


@pytest.mark.parametrize("url", ["https://compute.example.com", "http://127.0.0.1:8780", "http://[::1]:8780",
                                 "http://localhost:8780"])
def test_endpoint_is_https_or_loopback(url):
    assert gcp.check_endpoint(url) == url


@pytest.mark.parametrize("url", ["http://10.0.0.5:8780", "http://compute.example.com", "ftp://127.0.0.1"])
def test_plain_http_endpoint_elsewhere_is_refused(url):
    with pytest.raises(ValueError, match="must be an https:// URL"):
        gcp.clients(url)


def test_one_credentials_object_is_shared_by_all_clients(tmp_path, monkeypatch):
    """Application Default Credentials are looked up once (an authorized_user file, as gcloud writes it)."""
    import json

    adc = tmp_path / "application_default_credentials.json"
    adc.write_text(json.dumps({"type": "authorized_user", "client_id": "id.apps.googleusercontent.com",
                               "client_secret": "secret", "refresh_token": "token"}))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    api = gcp.clients(None)
    shared = {id(getattr(api, name).raw.transport._credentials) for name in gcp.SERVICES}
    assert len(shared) == 1
