"""What `inv --list` and a host-only deploy cost at start-up: the modules they import, not a timing.

`import tasks` (what inv/fab do before anything else) must load Invoke, the standard library and our
own task table only. Cloud clients, pydantic, rich and SSH are imported by the task that needs them.
"""

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Ours that `import tasks` may load: the task table and what the task signatures need.
OURS_ALLOWED = {
    "tasks", "runbook", "runbook.tasks", "runbook.cli", "runbook.tasks_cloud", "runbook.tasks_checks",
    "runbook.cloud", "runbook.sections", "runbook.engine", "runbook.engine.results", "runbook.errors",
    "runbook.secrets", "runbook.envfile", "testbed", "testbed.tasks",
    "runbook.tasks_monitoring",  # the monitoring-config task: stdlib and invoke until it runs
    "runbook.tasks_autostop",  # the autostop task (its own flags): stdlib and invoke until it runs
    "runbook.engine.status",  # the one result vocabulary (stdlib only), re-exported by engine.results
}
THIRD_PARTY_ALLOWED = {"invoke"}  # inv itself; `fab` adds Fabric on its own
HEAVY = ("google", "grpc", "pydantic", "rich", "fabric", "paramiko", "cryptography", "tenacity", "yaml", "troubleshoot")


def imported_by(code: str) -> list[str]:
    """Modules a fresh interpreter imports for *code*, beyond its own start-up."""
    probe = ("import json, sys\nbefore = set(sys.modules)\n" + code +
             "\nprint(json.dumps(sorted(set(sys.modules) - before)))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def beyond_invoke(code: str) -> list[str]:
    """What *code* imports beyond what `import invoke` loads by itself (Invoke's vendored YAML reader takes
    the installed PyYAML's C loader when there is one: that is Invoke's start-up cost, not ours)."""
    invoke_own = set(imported_by("import invoke"))
    return [m for m in imported_by(code) if m not in invoke_own or m == "invoke"]


def test_import_tasks_loads_only_invoke_the_stdlib_and_the_task_table():
    new = beyond_invoke("import tasks")
    top = {m.split(".")[0] for m in new}
    third_party = sorted(top - set(sys.stdlib_module_names) - {"runbook", "testbed", "tasks"}
                         - {m for m in top if m.startswith("_")})
    assert set(third_party) <= THIRD_PARTY_ALLOWED, f"imported at start-up: {third_party}"
    ours = sorted(m for m in new if m.split(".")[0] in ("tasks", "runbook", "testbed", "troubleshoot"))
    assert set(ours) <= OURS_ALLOWED, f"not on the allow-list: {sorted(set(ours) - OURS_ALLOWED)}"
    assert "runbook.tasks" in ours and "invoke" in top  # the probe saw the real import


def test_the_task_list_is_complete_without_importing_a_section():
    new = imported_by("import tasks\nprint(json.dumps(sorted(tasks.ns.task_names)))")
    assert not [m for m in new if m.startswith(("runbook.sections.", "runbook.cloud.", "runbook.verify"))]
    out = subprocess.run([sys.executable, "-c", "import json, tasks; print(json.dumps(sorted(tasks.ns.task_names)))"],
                         cwd=REPO, capture_output=True, text=True, check=True)
    names = json.loads(out.stdout)
    for name in ("deploy", "vm", "firewall", "cleanup", "verify", "troubleshoot", "docs", "vllm", "ai-server",
                 "dcgm", "node-exporter", "promtail", "sandbox.up", "sandbox.down"):
        assert name in names


def test_a_host_section_run_never_loads_the_cloud_client():
    new = imported_by("import tasks, fabric\nfrom runbook import config, inventory\n"
                      "from runbook.engine import output, runner\n"
                      "from runbook.sections import HOST_SECTIONS, ai_server, node_exporter")
    assert "fabric" in new and "runbook.sections.ai_server" in new
    assert not [m for m in new if m.startswith(("google", "grpc", "runbook.cloud."))]


def test_troubleshoot_loads_the_compute_client_only_for_the_items_that_ask_the_api():
    """google-cloud-compute takes seconds of CPU to import: `--only B-14` must not pay for it."""
    new = imported_by("import tasks\nfrom troubleshoot import run, tasks as ts_tasks\n"
                      "from troubleshoot.cloud_facts import CloudFacts")
    assert "troubleshoot.run" in new and "troubleshoot.cloud_items" in new
    assert not [m for m in new if m.startswith("google.cloud.compute")]
    assert "google.cloud.compute_v1" in imported_by("from troubleshoot import cloud_facts\ncloud_facts.load_client()")


def test_a_run_into_a_pipe_prints_its_lines_without_rich():
    """stdout is a pipe here: the lines go out as plain text and rich is never loaded for them."""
    new = imported_by("from runbook.engine.output import Output\nfrom runbook.engine import runner\n"
                      "out = Output()\nout.line('[host] 4-1   /app: ok')\nout.warn('w')")
    assert "runbook.engine.output" in new and "runbook.engine.runner" in new
    assert not [m for m in new if m.split(".")[0] == "rich"]


def test_heavy_libraries_are_not_imported_by_listing():
    new = beyond_invoke("import tasks")
    assert not [m for m in new if m.split(".")[0] in HEAVY]


def test_the_product_knows_no_sandbox_path():
    """The sandbox's index, mirrors and Loki come from testbed.settings, never from product code."""
    product = [p for folder in ("runbook", "troubleshoot") for p in (REPO / folder).rglob("*.py")]
    offenders = [str(p.relative_to(REPO)) for p in product
                 if "l4rb-sandbox" in p.read_text() or "127.0.0.1:3100" in p.read_text()]
    assert offenders == []


def test_cli_default_config_is_configs():
    from runbook import cli, config

    assert cli.DEFAULT_CONFIG == config.DEFAULT_CONFIG
