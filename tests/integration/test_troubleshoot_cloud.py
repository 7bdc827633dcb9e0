"""The cloud items B-1 and B-16 against the local Compute server, through the real CLI and client.

No sandbox host is needed: the image family and the quota are the Compute API's answers, so the
symptoms are planted there (a Deep Learning VM image family in the settings, an old disk holding
the region's SSD quota).
"""

from __future__ import annotations

import json
import urllib.request

import pytest
from test_troubleshoot_stack import evidence, run_checks

from runbook import gcp
from testbed.compute_server import ComputeServer

PROJECT, ZONE = "demo-project", "asia-northeast3-a"
FAST = {"op_pending_s": 0.02, "op_running_s": 0.06}


@pytest.fixture
def server():
    with ComputeServer(faults=FAST) as srv:
        yield srv


def config(tmp_path, url: str = "", token: str = "", **gcp_settings) -> str:
    token_file = tmp_path / "compute-api.token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    lines = ['secrets_file = "none.env"', "[gcp]", f'project_id = "{PROJECT}"', f'zone = "{ZONE}"',
             *(f"{k} = {json.dumps(v)}" for k, v in gcp_settings.items()),
             *([f'api_endpoint = "{url}"', f'api_token_file = "{token_file}"'] if url else []),
             "[inventory]", 'target = "hosts"', "[[inventory.hosts]]", 'name = "nowhere"', 'address = "127.0.0.1"',
             "port = 1", "[monitoring.promtail]", 'loki_url = "http://loki.example.com:3100"']
    path = tmp_path / "hosts.toml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def troubleshoot(cfg: str, *args: str):
    r = run_checks("troubleshoot", "--config", cfg, "--json", *args)
    assert "Traceback" not in r.stderr, r.stderr
    data = json.loads(r.stdout)
    (item,) = data["items"]
    return r.returncode, item, r.stderr


def seed_disk(server: ComputeServer, zone: str, name: str, size_gb: int, kind: str = "pd-ssd") -> None:
    body = json.dumps({"project": PROJECT, "zone": zone, "name": name, "sizeGb": size_gb, "type": kind}).encode()
    request = urllib.request.Request(f"{server.url}/_admin/disks", data=body, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "Authorization": f"Bearer {server.token}"})
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(request, timeout=10) as response:
        assert response.status == 201


def test_b16_an_old_disk_holds_the_ssd_quota(server, tmp_path):
    seed_disk(server, ZONE, "old-data", 100)
    seed_disk(server, "us-central1-a", "elsewhere", 500)  # another region's quota: not in the way
    cfg = config(tmp_path, server.url, server.token)
    rc, item, log = troubleshoot(cfg, "--only", "B-16")
    assert rc == 1 and item["verdict"] == "found", log
    assert item["summary"] == ("SSD_TOTAL_GB quota exceeded (Limit: 250) in region asia-northeast3: 100 GB are in use, "
                               "the VM's 200 GB pd-ssd boot disk does not fit")
    assert item["evidence"] == ["old-data (asia-northeast3-a, 100 GB pd-ssd, not attached to any VM)"]

    rc, item, log = troubleshoot(cfg, "--only", "B-16", "--fix")
    manual = item["fix"]["manual"]
    assert rc == 1 and not item["fix"]["applied"] and item["after"] is None
    assert manual[0].endswith(f"gcloud compute disks delete old-data --zone={ZONE} --project={PROJECT}   (100 GB)")
    assert any("IAM & Admin > Quotas, filter SSD_TOTAL_GB, region asia-northeast3" in m and "300 GB" in m
               for m in manual)

    api = gcp.clients(server.url, gcp.bearer(server.token))
    api.wait(api.disks.delete(project=PROJECT, zone=ZONE, disk="old-data"), timeout=30)
    rc, item, log = troubleshoot(cfg, "--only", "B-16")
    assert rc == 0 and item["verdict"] == "ok", log
    assert "SSD_TOTAL_GB in asia-northeast3: 0 of 250 GB in use" in item["summary"]


def test_b1_deep_learning_vm_image_on_g2(server, tmp_path):
    cfg = config(tmp_path, server.url, server.token, image_project="deeplearning-platform-release",
                 image_family="common-cu128-ubuntu-2204-nvidia-570")
    rc, item, log = troubleshoot(cfg, "--only", "B-1", "--fix")
    assert rc == 1 and item["verdict"] == "found", log
    assert "cannot boot a G2 (L4) machine" in evidence(item)
    assert item["fix"]["manual"][0] == ('In hosts.toml [gcp]: image_project = "ubuntu-os-accelerator-images" and '
                                        'image_family = "ubuntu-accelerator-2204-amd64-with-nvidia-580" (guide B-1)')
    rc, item, log = troubleshoot(config(tmp_path, server.url, server.token), "--only", "B-1")
    assert rc == 0, log
    assert item["summary"].startswith("ubuntu-accelerator-2204-amd64-with-nvidia-580 resolves to "
                                      "ubuntu-accelerator-2204-amd64-with-nvidia-580-v20260128")


def test_without_a_compute_api_the_cloud_side_cannot_tell(tmp_path):
    rc, item, log = troubleshoot(config(tmp_path), "--only", "B-16")
    assert rc == 2 and item["verdict"] == "unknown"  # exit 2: it cannot tell, which is not "all is well"
    assert item["summary"].startswith("no Compute API configured")
