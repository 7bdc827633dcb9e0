"""Guide section 7 as data: the files we write, the URLs we use, and how each step decides."""

import dataclasses
import http.server
import os
import re
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from guide_source import guide_text, heredoc

from runbook import config
from runbook.engine.steps import RunState
from runbook.errors import ConfigError
from runbook.sections import HOST_SECTIONS, dcgm, mirrors, promtail
from runbook.sections.common import HostInfo
from runbook.sections.dcgm_exporter_build import DcgmExporterBuild, major_of
from runbook.sections.downloads import VerifiedDownload
from runbook.sections.log_shipper_config import Shipping, alloy_config, promtail_yaml
from runbook.sections.loki_check import LokiReachable
from runbook.sections.metrics_wait import MetricsWait
from testbed import settings as sandbox

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "testbed/standins/promtail"), str(REPO / "testbed/standins/loki")]
import alloy_config as alloy_double  # noqa: E402
import promtail_config as promtail_double  # noqa: E402

SECRETS = {"VLLM_API_KEY": "key-123456", "OCR_API": "ocr-123456"}
SHIP = Shipping("http://loki.example.com:3100", "ai-server-l4", ("ai-server", "vllm"), "dojangkok-ai",
                "/var/log/dojangkok/production/*.log")


def cfg(target: str = "hosts", **monitoring) -> config.Config:
    data = tomllib.loads((REPO / "hosts.toml").read_text())
    data["inventory"] = {"target": target, "hosts": [{"name": "h", "address": "127.0.0.1"}]} \
        if target == "hosts" else {"target": target}
    if target != "sandbox":
        data["monitoring"]["promtail"]["loki_url"] = "http://loki.example.com:3100"
    for table, values in monitoring.items():
        data["monitoring"][table].update(values)
    settings = config.parse_settings(data)
    return config.Config(settings=settings, secrets=config.load_secrets(settings, REPO, SECRETS), root=REPO)


def build(name: str, c: config.Config) -> list:
    return HOST_SECTIONS[name].build(c, HostInfo("h", "ubuntu"))


# --- the files ---------------------------------------------------------------------------------------


def test_counters_file_and_metrics_wait_agree(metrics_server):
    """The /metrics wait looks for exactly the series the counters file it writes asks for, and it finds
    them in an exporter's answer only when all are there (a scrape missing one is not ready)."""
    steps = build("dcgm", cfg())
    written = next(s for s in steps if getattr(s, "path", "") == dcgm.COUNTERS)
    wait = next(s for s in steps if isinstance(s, MetricsWait))
    names = dcgm.counter_names(written.content)
    assert wait.series == names and len(names) == 6 and all(n.startswith("DCGM_FI_DEV_") for n in names)
    url, scrape = metrics_server
    scrape["text"] = "".join(f"# TYPE {n} gauge\n{n}{{gpu=\"0\"}} 1\n" for n in names)
    probe = ["bash", "-c", dataclasses.replace(wait, url=url).probe()]
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == "200"
    scrape["text"] = scrape["text"].replace(f"{names[-1]}{{", "other{")
    assert subprocess.run(probe, capture_output=True, text=True).stdout.strip() == f"200 without {names[-1]}"


def test_counters_file_is_the_guides_block():
    block = heredoc(guide_text(), "sudo tee /etc/dcgm-exporter/default-counters.csv > /dev/null << 'EOF'")
    written = next(s for s in build("dcgm", cfg()) if getattr(s, "path", "") == dcgm.COUNTERS)
    assert written.content == block


def test_promtail_config_has_one_journal_job_per_unit_with_matches(tmp_path):
    text = promtail_yaml(SHIP)
    assert "matches: _SYSTEMD_UNIT=ai-server.service" in text and "matches: _SYSTEMD_UNIT=vllm.service" in text
    assert "\n/\n" not in text  # the guide's stray line that makes promtail refuse the file
    assert "  - url: http://loki.example.com:3100/loki/api/v1/push\n" in text
    path = tmp_path / "config.yml"
    path.write_text(text)
    settings = promtail_double.load(str(path))  # strict, like promtail: unknown keys would fail
    jobs = {j.name: j for j in settings.jobs}
    assert {n: j.matches for n, j in jobs.items() if j.kind == "journal"} == {
        "ai-server": "_SYSTEMD_UNIT=ai-server.service", "vllm": "_SYSTEMD_UNIT=vllm.service"}
    assert jobs["dojangkok-ai"].glob == "/var/log/dojangkok/production/*.log"


def _deliveries(handle, unit: str) -> dict:
    return handle({"__journal__systemd_unit": f"{unit}.service", "__journal_message": "m"}, "m")


def test_alloy_config_gives_the_same_labels_as_promtail(tmp_path):
    (tmp_path / "p.yml").write_text(promtail_yaml(SHIP))
    (tmp_path / "a.alloy").write_text(alloy_config(SHIP))
    jobs = {j.name: j for j in promtail_double.load(str(tmp_path / "p.yml")).jobs}
    sources, urls = alloy_double.load(str(tmp_path / "a.alloy"))
    assert urls == [SHIP.push_url]
    by_matches = {s.matches: s for s in sources if s.kind == "journal"}
    for unit in SHIP.units:
        promtail_labels = jobs[unit].process({"__journal__systemd_unit": f"{unit}.service"}, "m")[0]
        (alloy_labels,) = [labels for _, labels, _ in _deliveries(
            by_matches[f"_SYSTEMD_UNIT={unit}.service"].handle, unit)]
        assert promtail_labels == alloy_labels == SHIP.labels()[unit]
    (files,) = [s for s in sources if s.kind == "file"]
    assert files.glob == SHIP.log_glob
    (entry,) = files.handle({"__path__": "/var/log/dojangkok/production/a.log",
                             "filename": "/var/log/dojangkok/production/a.log"}, "line")
    promtail_file = jobs["dojangkok-ai"].process({"__path__": "x", "filename": "/var/log/dojangkok/production/a.log"},
                                                 "line")[0]
    expected = {**SHIP.labels()["dojangkok-ai"], "filename": "/var/log/dojangkok/production/a.log"}
    assert entry[1] == promtail_file == expected


def test_without_matches_every_unit_would_be_mixed_b19(tmp_path):
    """What B-19 is about: the same job without `matches` gets vllm's lines labelled as ai-server."""
    text = promtail_yaml(SHIP).replace("      matches: _SYSTEMD_UNIT=ai-server.service\n", "")
    (tmp_path / "p.yml").write_text(text)
    job = {j.name: j for j in promtail_double.load(str(tmp_path / "p.yml")).jobs}["ai-server"]
    assert job.matches == ""
    labels = job.process({"__journal__systemd_unit": "vllm.service"}, "a vllm line")[0]
    assert labels["job"] == "ai-server" and "service" not in labels


# --- URLs: the guide's by default, mirrors when configured, the sandbox's copy on sandbox hosts ---------


def test_hosts_toml_steps_fetch_what_the_guides_commands_fetch():
    """On a real target, the section 7 steps built from hosts.toml download from the URLs the guide's own
    commands use (its `curl`/`git clone` lines), the version filled in."""
    guide = guide_text()
    wanted = re.findall(r"(?:curl -\w+|git clone) (https://\S+)", guide.split("## 7", 1)[1].split("\n## 8", 1)[0])
    assert len(wanted) >= 4, wanted
    # The guide ships logs with promtail (Alloy is the default today): the guide's way, as an option.
    real = cfg(promtail={"loki_url": "http://loki.example.com:3100", "log_shipper": "promtail"})
    steps = [s for name in ("dcgm", "node-exporter", "promtail") for s in build(name, real)]
    fetched = {getattr(s, f.name) for s in steps for f in dataclasses.fields(s)
               if isinstance(getattr(s, f.name), str) and getattr(s, f.name).startswith("https://")}
    for url in wanted:
        # The guide's shell fills ${distribution} in; the keyring step does it on the host from {distribution}.
        pattern = re.escape(url).replace(re.escape("${distribution}"), r"(\{distribution\}|[a-z0-9]+)")
        assert any(re.fullmatch(pattern, have) for have in fetched), (url, sorted(fetched))


def test_real_targets_use_the_configured_urls_and_sandbox_hosts_their_mirror():
    real = {s.name: s for s in build("node-exporter", cfg()) if isinstance(s, VerifiedDownload)}["node_exporter"]
    assert real.url == ("https://github.com/prometheus/node_exporter/releases/download/v1.9.0/"
                        "node_exporter-1.9.0.linux-amd64.tar.gz")
    assert real.checksums_url.endswith("/v1.9.0/sha256sums.txt")
    sandboxed = {s.name: s for s in build("node-exporter", cfg("sandbox")) if isinstance(s, VerifiedDownload)}
    assert sandboxed["node_exporter"].url == (f"{sandbox.MIRROR_URL}/node_exporter/v1.9.0/"
                                              "node_exporter-1.9.0.linux-amd64.tar.gz")
    mirror = "https://mirror.internal/ne/node_exporter-{version}.tar.gz"
    own = [s for s in build("node-exporter", cfg("sandbox", node_exporter={"url": mirror}))
           if isinstance(s, VerifiedDownload)][0]
    assert own.url == "https://mirror.internal/ne/node_exporter-1.9.0.tar.gz"  # a mirror is never replaced


def test_go_comes_from_a_verified_tarball_unless_configured_otherwise():
    (go,) = [s for s in build("dcgm", cfg()) if isinstance(s, VerifiedDownload)]
    assert go.sha256 == "77e5da33bb72aeaef1ba4418b6fe511bc4d041873cbf82e5aa6318740df98717"
    assert go.url == "https://go.dev/dl/go1.24.4.linux-amd64.tar.gz"
    assert (go.install, go.dest) == ("tree", "/usr/local/go")
    assert mirrors.go_method(cfg("sandbox")) == "apt"
    snap = cfg(dcgm={"go": {"method": "snap"}})
    assert [s.run for s in build("dcgm", snap) if "Go" in s.title] == ["snap install go --classic"]


def test_loki_url_is_required_outside_the_sandbox():
    # Checked when hosts.toml is read, before any section has changed a host.
    with pytest.raises(ConfigError, match="monitoring.promtail.loki_url: required with target 'hosts'"):
        cfg(promtail={"loki_url": ""})
    assert promtail.shipping(cfg("sandbox")).loki_url == sandbox.LOKI_URL
    c = cfg(promtail={"loki_url": "http://loki.example.com:3100/"})
    assert promtail.shipping(c).push_url == "http://loki.example.com:3100/loki/api/v1/push"
    with pytest.raises(ConfigError, match="/loki/api/v1/push is added"):
        cfg(promtail={"loki_url": "http://loki:3100/loki/api/v1/push"})


def test_each_replica_ships_under_its_own_host_label():
    one = cfg("sandbox")
    assert promtail.shipping(one, "l4rb-2").host == one.settings.gcp.instance_name  # the guide's one VM
    fleet = one.model_copy(update={"settings": one.settings.model_copy(update={
        "gcp": one.settings.gcp.model_copy(update={"replicas": 3})})})
    assert [promtail.shipping(fleet, f"l4rb-{n}").host for n in (1, 2)] == ["l4rb-1", "l4rb-2"]
    config_file = {s.path: s.content for s in promtail.steps(fleet, HostInfo("l4rb-2", "ubuntu"))
                   if getattr(s, "path", "") == "/etc/alloy/config.alloy"}
    labels = re.findall(r'^\s*host\s*=\s*"([^"]*)"', config_file["/etc/alloy/config.alloy"], re.M)
    assert labels and set(labels) == {"l4rb-2"}, labels
    named = cfg("sandbox", promtail={"host_label": "web-1"})
    assert promtail.shipping(named, "l4rb-2").host == "web-1"


def test_alloy_replaces_promtail_and_stops_it():
    titles = [s.title for s in build("promtail", cfg("sandbox", promtail={"log_shipper": "alloy"}))]
    assert "promtail.service stopped and disabled (log_shipper is alloy)" in titles
    assert not any(t.startswith("promtail 3.4.2") for t in titles)
    assert "alloy.service stopped and disabled (log_shipper is promtail)" in [
        s.title for s in build("promtail", cfg("sandbox", promtail={"log_shipper": "promtail"}))]


# --- the exporter tag follows the installed DCGM (B-7) -----------------------------------------------

BUILD = DcgmExporterBuild(guide="7-4", title="t", git="file:///x.git", tags={"3": "3.3.9-3.6.1", "4": "4.2.3-4.1.3"},
                          package="datacenter-gpu-manager", go_path="/usr/lib/go/bin")


def fact(libs="", installed="", candidate="", stamp="", binary=""):
    return f"libs={libs}\ninstalled={installed}\ncandidate={candidate}\nstamp={stamp}\nsha256={binary}"


def test_major_version_parsing():
    assert [major_of(v) for v in ("1:3.3.9", "1:4.2.3-1", "4.1.1", "(none)", "")] == ["3", "4", "4", "", ""]


@pytest.mark.parametrize("facts,tag", [
    (fact(libs="libdcgm.so.3 ", installed="datacenter-gpu-manager=1:3.3.9 "), "3.3.9-3.6.1"),
    (fact(libs="libdcgm.so.4 ", installed="datacenter-gpu-manager-4-core=1:4.2.3-1 "), "4.2.3-4.1.3"),
    (fact(libs="libdcgm.so.3 libdcgm.so.4 ", installed="datacenter-gpu-manager-4-core=1:4.2.3-1 "), "4.2.3-4.1.3"),
    (fact(candidate="1:3.3.9"), "3.3.9-3.6.1"),  # dry run before DCGM is installed
])
def test_the_tag_matches_the_dcgm_major(facts, tag):
    plan = BUILD.plan(facts, RunState())
    assert plan.changed and plan.data[0] == tag and not plan.error


def test_built_tag_is_kept_until_dcgm_changes_major():
    stamp = "git=file:///x.git tag=3.3.9-3.6.1 dcgm=3 commit=abc sha256=" + "a" * 64
    same = BUILD.plan(fact(libs="libdcgm.so.3", stamp=stamp, binary="a" * 64), RunState())
    assert not same.changed
    switched = BUILD.plan(fact(libs="libdcgm.so.4", stamp=stamp, binary="a" * 64), RunState())
    assert switched.changed and "3.3.9-3.6.1 -> 4.2.3-4.1.3" in switched.summary
    tampered = BUILD.plan(fact(libs="libdcgm.so.3", stamp=stamp, binary="b" * 64), RunState())
    assert tampered.changed and "changed since" in tampered.summary


def test_unknown_dcgm_major_is_an_error_naming_the_setting():
    plan = BUILD.plan(fact(libs="libdcgm.so.5"), RunState())
    assert plan.error and 'exporter_tags."5"' in plan.error


def test_no_dcgm_at_all_cannot_be_built():
    plan = BUILD.plan(fact(), RunState())
    assert plan.changed and plan.data is None
    assert "exit 1" in BUILD.script(plan)


# --- downloads, waits, checks on this machine's shell ---------------------------------------------


@pytest.mark.skipif(os.geteuid() != 0, reason="installs files owned by root")
def test_verified_download_installs_only_a_matching_archive(tmp_path):
    import hashlib
    import tarfile

    src = tmp_path / "rel"
    (src / "pkg-1.0").mkdir(parents=True)
    (src / "pkg-1.0/tool").write_text("#!/bin/sh\necho tool\n")
    with tarfile.open(tmp_path / "pkg-1.0.tar.gz", "w:gz") as tar:
        tar.add(src / "pkg-1.0", arcname="pkg-1.0")
    digest = hashlib.sha256((tmp_path / "pkg-1.0.tar.gz").read_bytes()).hexdigest()
    (tmp_path / "sums.txt").write_text(f"{'0' * 64}  other.tar.gz\n{digest}  pkg-1.0.tar.gz\n")
    step = VerifiedDownload(guide="t", title="t", name="pkg", url=f"file://{tmp_path}/pkg-1.0.tar.gz",
                            checksums_url=f"file://{tmp_path}/sums.txt", member="pkg-1.0/tool",
                            dest=str(tmp_path / "bin/tool"), stamp_dir=str(tmp_path / "stamps"))

    def run(script):
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True)

    fresh = step.plan(run(step.probe()).stdout, RunState())
    assert fresh.changed
    assert run(step.script(fresh)).returncode == 0
    assert (tmp_path / "bin/tool").read_text().startswith("#!/bin/sh") and os.access(tmp_path / "bin/tool", os.X_OK)
    assert not step.plan(run(step.probe()).stdout, RunState()).changed

    (tmp_path / "pkg-1.0.tar.gz").write_bytes((tmp_path / "pkg-1.0.tar.gz").read_bytes() + b"tampered")
    (tmp_path / "bin/tool").unlink()
    bad = run(step.script(step.plan(run(step.probe()).stdout, RunState())))
    assert bad.returncode != 0 and "checksum mismatch for pkg-1.0.tar.gz" in bad.stderr
    assert "Nothing was installed" in bad.stderr and not (tmp_path / "bin/tool").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="installs files owned by root")
def test_verified_download_replaces_a_whole_tree_against_a_pinned_digest(tmp_path):
    import hashlib
    import tarfile

    (tmp_path / "src/go/bin").mkdir(parents=True)
    (tmp_path / "src/go/bin/go").write_text("#!/bin/sh\necho go version go9.9\n")
    with tarfile.open(tmp_path / "go9.9.tar.gz", "w:gz") as tar:
        tar.add(tmp_path / "src/go", arcname="go")
    digest = hashlib.sha256((tmp_path / "go9.9.tar.gz").read_bytes()).hexdigest()
    (tmp_path / "goroot").mkdir()
    (tmp_path / "goroot/old-file").write_text("from the previous Go")

    def step(sha256):
        return VerifiedDownload(guide="t", title="t", name="go", url=f"file://{tmp_path}/go9.9.tar.gz", sha256=sha256,
                                member="go", dest=str(tmp_path / "goroot"), install="tree", tree_marker="bin/go",
                                stamp_dir=str(tmp_path / "stamps"))

    def run(script):
        return subprocess.run(["bash", "-c", script], capture_output=True, text=True)

    wrong = step("0" * 64)
    bad = run(wrong.script(wrong.plan(run(wrong.probe()).stdout, RunState())))
    assert bad.returncode != 0 and "pinned sha256" in bad.stderr and (tmp_path / "goroot/old-file").exists()
    good = step(digest)
    assert run(good.script(good.plan(run(good.probe()).stdout, RunState()))).returncode == 0
    assert (tmp_path / "goroot/bin/go").exists() and not (tmp_path / "goroot/old-file").exists()
    assert not good.plan(run(good.probe()).stdout, RunState()).changed


def test_a_download_needs_a_checksum():
    with pytest.raises(ValueError, match="checksum"):
        VerifiedDownload(guide="t", title="t", name="x", url="https://x/y.tar.gz", member="y", dest="/tmp/y")


@pytest.fixture
def metrics_server():
    body = {"text": ""}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            data = body["text"].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/metrics", body
    server.shutdown()


def test_metrics_wait_needs_every_series_not_only_http_200(metrics_server):
    url, body = metrics_server
    step = MetricsWait(guide="t", title="t", url=url, unit="x.service",
                       series=("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_FB_FREE"))

    def probe():
        return subprocess.run(["bash", "-c", step.probe()], capture_output=True, text=True).stdout.strip()

    assert probe() == "200 without DCGM_FI_DEV_GPU_TEMP,DCGM_FI_DEV_FB_FREE"  # B-9: empty first scrape
    body["text"] = 'DCGM_FI_DEV_GPU_TEMP{gpu="0"} 45\n'
    assert probe() == "200 without DCGM_FI_DEV_FB_FREE"
    body["text"] += 'DCGM_FI_DEV_FB_FREE{gpu="0"} 22000\n'
    assert probe() == "200"
    assert not step.plan("200", RunState()).changed and step.plan("200", RunState()).data is None


def test_unreachable_loki_explains_b17():
    step = LokiReachable(guide="7-6", title="t", url="http://loki.example.com:3100", unit="promtail.service")
    assert not step.plan("204\n\n0", RunState()).error
    timeout = step.plan("000\ncurl: (28) Connection timed out after 5001 milliseconds \n12", RunState())
    assert "B-17" in timeout.error and "TCP 3100" in timeout.error and "12 push error(s)" in timeout.error
    assert "Connection timed out" in timeout.error


def test_an_apt_source_line_replaces_the_keyring_for_mirrors():
    line = "deb [signed-by=/usr/share/keyrings/cuda.gpg] http://mirror.internal/cuda/ubuntu2204/x86_64/ /"
    (repo,) = [s for s in build("dcgm", cfg(dcgm={"apt_repo": line})) if s.guide == "7-1" and "cuda" in s.title.lower()]
    assert repo.path == dcgm.CUDA_LIST and repo.content == line + "\n"
    with pytest.raises(ConfigError, match="apt_repo"):
        cfg(dcgm={"apt_repo": "deb http://x/ $(reboot)"})


def _dcgm_step(major: str = "auto"):
    from runbook.sections.dcgm_major import DcgmPackages
    return DcgmPackages(guide="7-2", title="DCGM", major=major, package_3="datacenter-gpu-manager",
                        package_4="datacenter-gpu-manager-4-core",
                        package_4_cuda="datacenter-gpu-manager-4-cuda{cuda}")


BOTH = "candidate3=1:3.3.9\ncandidate4=1:4.2.3-1\ncuda=12\ncudapkg=datacenter-gpu-manager-4-cuda12\n"


def test_dcgm_auto_picks_4_when_offered_with_the_cuda_package():
    plan = _dcgm_step().plan("installed=\n" + BOTH + "candidate4cuda=1:4.2.3-1\n", RunState())
    assert plan.changed and plan.data == ("datacenter-gpu-manager-4-core", "datacenter-gpu-manager-4-cuda12")
    no_cuda_pkg = _dcgm_step().plan("installed=\n" + BOTH + "candidate4cuda=(none)\n", RunState())
    assert no_cuda_pkg.data == ("datacenter-gpu-manager-4-core",)
    only3 = _dcgm_step().plan("installed=\ncandidate3=1:3.3.9\ncandidate4=(none)\ncuda=12\n", RunState())
    assert only3.data == ("datacenter-gpu-manager",) and "DCGM 3" in only3.summary


def test_dcgm_auto_keeps_the_installed_major_and_never_downgrades():
    on3 = _dcgm_step().plan("installed=datacenter-gpu-manager=1:3.3.9\n" + BOTH, RunState())
    assert not on3.changed and "DCGM 3" in on3.summary and not on3.error
    on4 = "installed=datacenter-gpu-manager-4-core=1:4.2.3-1\n" + BOTH
    assert not _dcgm_step().plan(on4, RunState()).changed
    refused = _dcgm_step("3").plan(on4, RunState())
    assert refused.error and "never downgrades DCGM" in refused.error and not refused.changed
    up = _dcgm_step("4").plan("installed=datacenter-gpu-manager=1:3.3.9\n" + BOTH, RunState())
    assert up.changed and up.data[0] == "datacenter-gpu-manager-4-core"


def test_dcgm_missing_package_points_at_b6():
    plan = _dcgm_step("4").plan("installed=\ncandidate3=\ncandidate4=\n", RunState())
    assert "B-6" in plan.error


def test_go_older_than_a_tag_needs_is_refused():
    with pytest.raises(ConfigError, match="needs 1.24"):
        config.parse_settings({"monitoring": {"dcgm": {"go": {"version": "1.22.0"}}}})
    config.parse_settings({"monitoring": {"dcgm": {"go": {"version": "1.22.0", "method": "apt"}}}})


def test_promtail_is_warned_about_and_alloy_is_the_default():
    assert config.Settings().monitoring.promtail.log_shipper == "alloy"
    assert promtail.eol_warning(config.Settings()) == ""
    old = config.parse_settings({"monitoring": {"promtail": {"log_shipper": "promtail"}}})
    assert "end of life since 2026-03-02" in promtail.eol_warning(old)
