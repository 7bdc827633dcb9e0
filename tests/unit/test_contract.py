"""Contract tests: what the runbook sends is what Google's own compute.v1.json describes.

The description is the discovery document bundled in google-api-python-client (no network).
Every request reaching an in-process server is checked by the autouse fixture in
tests/compute_contract.py; these tests prove the checker catches each kind of mistake, and that
a whole `inv vm`/`inv firewall`/cleanup run sends only valid requests.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from compute_contract import violations
from google.cloud import compute_v1

from runbook import gcp
from runbook.cloud import vm as cloud_vm
from testbed.compute_server import ComputeServer, contract

from compute_api import FAST, POLICY

pytestmark = pytest.mark.contract

PROJECT, ZONE = "demo-project", "asia-northeast3-a"
INSERT = f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/instances"
RID = {"requestId": "0b6c0e44-5f0e-4d8b-a4c3-6a0d6a3f8e21"}
FAMILY = "projects/ubuntu-os-accelerator-images/global/images/family/ubuntu-accelerator-2204-amd64-with-nvidia-580"


def vm_body(**over) -> dict:
    """The guide's VM as JSON, the way the client serializes compute_v1.Instance."""
    body = {
        "name": "vm1",
        "machineType": f"zones/{ZONE}/machineTypes/g2-standard-4",
        "guestAccelerators": [{"acceleratorType": f"zones/{ZONE}/acceleratorTypes/nvidia-l4", "acceleratorCount": 1}],
        "disks": [{"boot": True, "autoDelete": True, "initializeParams": {
            "sourceImage": FAMILY, "diskSizeGb": "200", "diskType": f"zones/{ZONE}/diskTypes/pd-ssd"}}],
        "scheduling": {"onHostMaintenance": "TERMINATE", "automaticRestart": True},
        "tags": {"items": ["ai-server"]},
        "networkInterfaces": [{"network": "global/networks/default",
                               "accessConfigs": [{"name": "External NAT", "type": "ONE_TO_ONE_NAT"}]}],
        "labels": {"managed-by": "l4-runbook"},
    }
    body.update(over)
    return body


def kinds(method: str, path: str, query: dict, body) -> set[tuple[str, str]]:
    return {(p.kind, p.field) for p in contract.check(method, path, query, body)}


# -- the description itself ----------------------------------------------------------------------


def test_description_is_googles_bundled_document():
    doc = contract.document()
    assert doc["name"] == "compute" and doc["version"] == "v1" and doc["servicePath"] == "compute/v1/"
    assert contract.document_path().name == "compute.v1.json"
    method, params = contract.find_method("GET", f"/compute/v1/projects/{PROJECT}/global/images/family/f1")
    assert method.id == "compute.images.getFromFamily" and params == {"project": PROJECT, "family": "f1"}
    assert contract.find_method("GET", f"/compute/v1/projects/{PROJECT}")[0].id == "compute.projects.get"


def test_a_valid_vm_insert_passes_in_every_json_form():
    assert contract.check("POST", INSERT, RID, vm_body()) == []
    as_int = vm_body()
    as_int["disks"][0]["initializeParams"]["diskSizeGb"] = 200  # int64 as a JSON number: allowed too
    full = f"https://www.googleapis.com/compute/v1/projects/{PROJECT}/zones/{ZONE}/machineTypes/g2-standard-4"
    assert contract.check("POST", INSERT, RID, {**as_int, "machineType": full}) == []


# -- each kind of mistake is caught ---------------------------------------------------------------


@pytest.mark.parametrize(("body", "expected"), [
    ({"nmae": "vm1"}, ("unknown", "nmae")),
    ({"scheduling": {"onHostMaintenance": "TERMINATE", "preemptable": False}}, ("unknown", "scheduling.preemptable")),
    ({"disks": [{"initializeParams": {"diskSizeGB": "200"}}]}, ("unknown", "disks[0].initializeParams.diskSizeGB")),
    ({"scheduling": {"onHostMaintenance": "SOMETIMES"}}, ("enum", "scheduling.onHostMaintenance")),
    ({"scheduling": {"automaticRestart": "yes"}}, ("type", "scheduling.automaticRestart")),
    ({"disks": [{"initializeParams": {"diskSizeGb": "200GB"}}]}, ("type", "disks[0].initializeParams.diskSizeGb")),
    ({"disks": [{"initializeParams": {"diskSizeGb": 2.5}}]}, ("type", "disks[0].initializeParams.diskSizeGb")),
    ({"guestAccelerators": [{"acceleratorCount": "one"}]}, ("type", "guestAccelerators[0].acceleratorCount")),
    ({"tags": {"items": "ai-server"}}, ("type", "tags.items")),
    ({"tags": ["ai-server"]}, ("type", "tags")),
    ({"labels": {"managed-by": 7}}, ("type", "labels.managed-by")),
    ({"name": 42}, ("type", "name")),
])
def test_broken_body_fields_are_caught(body, expected):
    assert expected in kinds("POST", INSERT, RID, vm_body(**body))


def test_uint64_refuses_negatives_and_int64_takes_signed():
    id_field = {"id": "-5"}  # Instance.id is uint64
    assert ("type", "id") in kinds("POST", INSERT, RID, vm_body(**id_field))
    assert kinds("POST", INSERT, RID, vm_body(id="5")) == set()


@pytest.mark.parametrize(("query", "expected"), [
    ({"requestId": "retry-1"}, ("request_id", "requestId")),
    ({"requestId": "00000000-0000-0000-0000-000000000000"}, ("request_id", "requestId")),
    ({"requestId": "0B6C0E445F0E4D8BA4C36A0D6A3F8E21"}, ("request_id", "requestId")),
    ({**RID, "zone": ZONE}, ("query", "zone")),
    ({**RID, "dryRun": "true"}, ("query", "dryRun")),
])
def test_broken_query_parameters_are_caught(query, expected):
    assert expected in kinds("POST", INSERT, query, vm_body())


def test_wrong_verb_unknown_path_bad_path_param_and_typed_query_are_caught():
    assert kinds("PUT", INSERT, {}, vm_body()) == {("method", f"PUT {INSERT}")}
    assert ("method", f"GET /compute/v1/projects/{PROJECT}/zones/{ZONE}/gpus") in kinds(
        "GET", f"/compute/v1/projects/{PROJECT}/zones/{ZONE}/gpus", {}, None)
    assert ("path", "instance") in kinds("GET", f"{INSERT}/VM_1", {}, None)
    listing = f"/compute/v1/projects/{PROJECT}/aggregated/instances"
    assert ("query", "maxResults") in kinds("GET", listing, {"maxResults": "many"}, None)
    assert ("query", "includeAllScopes") in kinds("GET", listing, {"includeAllScopes": "1"}, None)
    assert kinds("GET", listing, {"maxResults": "10", "filter": 'name = "vm1"'}, None) == set()
    assert ("unknown", "resource") in kinds("POST", f"{INSERT}/vm1/stop", RID, {"force": True})


# -- the recorder, and the server's own strictness, on a broken request ---------------------------


def _send(url: str, token: str, method: str, body: dict, query: str) -> tuple[int, dict]:
    req = urllib.request.Request(f"{url}{INSERT}?{query}", data=json.dumps(body).encode(), method=method,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.sends_invalid_requests
def test_a_broken_field_in_the_vm_body_is_recorded_as_a_violation(compute_requests):
    broken = vm_body(scheduling={"onHostMaintenance": "TERMINATE", "automaticRestart": True, "restartOnFailure": 1})
    with ComputeServer(faults=FAST) as srv:
        status, answer = _send(srv.url, srv.token, "POST", broken, "requestId=" + RID["requestId"])
    assert status == 400 and answer["error"]["status"] == "INVALID_ARGUMENT"
    assert answer["error"]["message"] == (
        "Invalid JSON payload received. Unknown name \"restartOnFailure\" at 'resource.scheduling': "
        "Cannot find field.")
    assert answer["error"]["details"][0]["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert violations(compute_requests) == [
        f"POST {INSERT}: unknown scheduling.restartOnFailure: no field 'restartOnFailure' in Scheduling"]


# -- a whole run of the cloud sections sends only what the description allows --------------------


def test_every_request_of_a_vm_and_firewall_run_and_cleanup_is_valid(compute_requests, tmp_path):
    from test_cloud_api import Cloud, _merge  # noqa: F401 - the same harness the cloud tests use

    with ComputeServer(faults=FAST) as srv:
        cloud = Cloud(srv, tmp_path)
        cloud.run("firewall", "vm")
        cloud.run("vm")
        cloud.api.wait(cloud.api.instances.stop(project=PROJECT, zone=ZONE, instance="ai-server-l4"))
        cloud.run("vm")  # starts it again
        cloud.cleanup(delete=True, firewall=True, yes=True)
    sent = {contract.find_method(m, p)[0].id for m, p, _, _ in compute_requests}
    assert violations(compute_requests) == []
    assert {"compute.instances.insert", "compute.firewalls.insert", "compute.instances.start",
            "compute.instances.delete", "compute.firewalls.delete", "compute.regions.get",
            "compute.projects.get", "compute.images.getFromFamily", "compute.zoneOperations.wait",
            "compute.instances.getGuestAttributes"} <= sent
    assert all(contract.request_id_problem(q["requestId"]) is None for m, _, q, _ in compute_requests if m != "GET"
               and "requestId" in q)


def test_the_product_vm_body_is_valid_as_serialized(tmp_path):
    from test_cloud_api import Cloud

    with ComputeServer(faults=FAST) as srv:
        cloud = Cloud(srv, tmp_path)
        from runbook.cloud.context import open_context
        from runbook.engine.output import Output

        ctx = open_context(cloud.settings, tmp_path, Output(console=cloud.console), policy=POLICY)
        body = json.loads(compute_v1.Instance.to_json(cloud_vm.body(ctx, ZONE)))
    assert contract.check("POST", INSERT, RID, body) == []
    assert body["serviceAccounts"][0]["email"] == "default"


def test_clients_send_uuid_request_ids(compute_requests):
    with ComputeServer(faults=FAST) as srv:
        api = gcp.clients(srv.url, gcp.bearer(srv.token), policy=POLICY)
        api.wait(api.firewalls.insert(project=PROJECT, firewall_resource=compute_v1.Firewall(
            name="fw1", allowed=[compute_v1.Allowed(I_p_protocol="tcp", ports=["22"])], source_ranges=["10.0.0.0/8"])))
    (insert,) = [q for m, _, q, _ in compute_requests if m == "POST" and "requestId" in q]
    assert contract.request_id_problem(insert["requestId"]) is None
