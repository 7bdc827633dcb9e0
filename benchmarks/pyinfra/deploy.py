# The pyinfra twin of `fab deploy --only ai-server,node-exporter` (guide sections 4 and 7-5).
#
# Every path, mode, package list and file body comes from the vars.json that compare_ansible.py renders
# from the runbook's own steps (the same file the Ansible playbook reads); its path is the host's
# `l4rb_vars` inventory data. Only pyinfra's own operations and facts are used, in pyinfra's idiom:
# facts are read while the deploy is prepared, and an operation yields commands only where the host
# differs. It decides what is right the way the Ansible twin does (per file content, owner and mode;
# packages by `pip freeze`/`uv pip freeze`; the download by its stamp against the binary's sha256),
# so the drift check compares the tools' primitives, not two different designs.
#
# Written from pyinfra's documentation (docs.pyinfra.com, 3.x: operations apt, files, pip, server,
# systemd; facts server.Command and files.Sha256File; the `_if` and `_sudo_user` global arguments).
import json
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.facts.files import Sha256File
from pyinfra.facts.server import Command
from pyinfra.operations import apt, files, pip, server, systemd
from pyinfra.operations.util import any_changed

VARS = json.loads(Path(host.data.l4rb_vars).read_text())
AI = VARS["l4rb_ai_server"]
NODE = VARS["l4rb_node_exporter"]


def probe(command: str) -> str:
    """A read-only shell fact; the command always exits 0 (what it found is in its output)."""
    return (host.get_fact(Command, command=f"{{ {command}; }} 2>/dev/null; true") or "").strip()


def http_ok(url: str, status: int) -> bool:
    code = probe(f"curl -s -o /dev/null -w '%{{http_code}}' {shlex.quote(url)}")
    return code == str(status)


def wait_for(name: str, check: str, timeout: int, changes: list) -> None:
    """Poll *check* after a restart (only then), or now when the service is not answering."""
    loop = (f"for i in $(seq {max(1, timeout // 2)}); do {check} && exit 0; sleep 2; done; "
            f"echo {shlex.quote(name + ': not ready in time')} >&2; exit 1")
    if probe(f"{check} && echo yes") == "yes":
        server.shell(name=name, commands=[loop], _if=any_changed(*changes))
    else:
        server.shell(name=name, commands=[loop])


# --- guide section 4: ai-server ---------------------------------------------------------------------
owner = AI["owner"]
source = AI["source"]
apt.packages(name="4-2 python3-venv and curl (B-13)", packages=AI["apt"], no_recommends=True)

uv = AI["uv"]
pip.venv(name="4-2 uv's own venv", path=uv["home"], python="python3")
pip.packages(name="4-2 uv in its own venv", packages=[uv["spec"]], virtualenv=uv["home"])
files.link(name="4-2 uv on the PATH", path=uv["link"], target=f"{uv['home']}/bin/uv")

for d in AI["directories"]:
    files.directory(name=f"4-1 {d['path']}", path=d["path"], user=d["owner"], group=d["group"], mode=d["mode"])

# The application tree, path by path from the shipped tarball's manifest; the directories it ships are
# fully managed (a file there that the tree lacks is removed), the top of the app directory is shared.
changes = []
for entry in source["tree"]:
    dest = f"{source['dest']}/{entry['path']}"
    if entry["kind"] == "d":
        changes.append(files.directory(name=f"4-1 application code: {entry['path']}/", path=dest, user=owner,
                                       group=owner, mode=entry["mode"]))
    else:
        changes.append(files.put(name=f"4-1 application code: {entry['path']}", src=source["src"] + entry["path"],
                                 dest=dest, user=owner, group=owner, mode=entry["mode"]))
shipped = {e["path"] for e in source["tree"]}
for top in source["managed_dirs"]:
    listing = probe(f"cd {shlex.quote(source['dest'])} && find {shlex.quote(top)} -mindepth 1 "
                    r"\( -name __pycache__ -o -name '*.pyc' \) -prune -o -printf '%y|%p\n'")
    for line in sorted(listing.splitlines()):
        kind, _, extra = line.partition("|")
        if extra in shipped:
            continue
        remove = files.directory if kind == "d" else files.file
        changes.append(remove(name=f"4-1 application code: {extra} (not in the source)",
                              path=f"{source['dest']}/{extra}", present=False))
changes.append(files.put(name="4-1 application code stamp", src=StringIO(source["stamp_content"]),
                         dest=source["stamp"], user=owner, group=owner, mode="644"))

venv = AI["venv"]
if probe(f"{venv['check']} && echo yes") != "yes":
    changes.append(server.shell(name="4-2 venv", commands=[venv["run"]]))

# uv venvs have no pip, so pip.packages cannot look inside: `uv pip freeze`, like the runbook.
packages = AI["packages"]
frozen = probe(f"uv pip freeze --python {shlex.quote(packages['python'])}")
have = {line.split("==", 1)[0].lower().replace("_", "-").replace(".", "-") for line in frozen.splitlines()
        if "==" in line}
missing = [spec for spec, name in zip(packages["specs"], packages["names"], strict=True) if name not in have]
if missing:
    changes.append(server.shell(name="4-2 app dependencies (incl. B-14)",
                                commands=[f"{packages['install']} {' '.join(shlex.quote(m) for m in missing)}"]))

for f in AI["files"]:
    if f["secret"]:
        changes.append(files.put(name=f"4-3 {f['dest']} (secrets)", src=f["src"], dest=f["dest"], user=f["owner"],
                                 group=f["group"], mode=f["mode"]))

# Like the runbook: a drop-in that overrides a managed setting is renamed aside, never deleted.
dropins = AI["dropins"]
found = probe(f"grep -lE {shlex.quote(dropins['pattern'])} "
              + " ".join(shlex.quote(d) + "/*.conf" for d in dropins["dirs"]))
for path in found.splitlines():
    aside = shlex.quote(path) + ".l4rb-aside-$(date -u +%Y%m%d-%H%M%S)"
    changes.append(server.shell(name=f"4-4 drop-in {path} moved aside",
                                commands=[f"mv -f {shlex.quote(path)} {aside}"]))

for f in AI["files"]:
    if not f["secret"]:
        changes.append(files.put(name=f"4-4 {f['dest']}", src=f["src"], dest=f["dest"], user=f["owner"],
                                 group=f["group"], mode=f["mode"]))

restart = systemd.service(name=f"4-5 restart {AI['service']} if anything above changed", service=AI["service"],
                          running=True, restarted=True, daemon_reload=True, _if=any_changed(*changes))
systemd.service(name=f"4-5 {AI['service']} enabled and running", service=AI["service"], running=True,
                enabled=True)
health = AI["health"]
wait_for("4-6 /health", f"[ \"$(curl -s -o /dev/null -w '%{{http_code}}' {shlex.quote(health['url'])})\" = "
         f"{health['status']} ]", health["timeout"], [restart])

# --- guide 7-5: node-exporter ---------------------------------------------------------------------------
apt.packages(name="7-5 curl and ca-certificates", packages=NODE["apt"], no_recommends=True)

# The runbook's VerifiedDownload: a stamp records the URL, the release sha256 and the installed binary's
# sha256; the binary is (re)installed by the runbook's own fetch-verify-install script when they disagree.
dl = NODE["download"]
stamp = dict(part.split("=", 1) for part in probe(f"cat {shlex.quote(dl['stamp'])}").split() if "=" in part)
binary = host.get_fact(Sha256File, path=dl["dest"])
node_changes = []
if (not binary or stamp.get("url") != dl["url"] or stamp.get("installed") != binary
        or (dl["sha256"] and stamp.get("sha256") != dl["sha256"])):
    node_changes.append(server.shell(name=f"7-5 node_exporter {dl['name']} (sha256-verified)",
                                     commands=[dl["script"]]))
for f in NODE["files"]:
    node_changes.append(files.put(name=f"7-5 {f['dest']}", src=f["src"], dest=f["dest"], user=f["owner"],
                                  group=f["group"], mode=f["mode"]))
node_restart = systemd.service(name=f"7-5 restart {NODE['service']} if anything above changed",
                               service=NODE["service"], running=True, restarted=True, daemon_reload=True,
                               _if=any_changed(*node_changes))
systemd.service(name=f"7-5 {NODE['service']} enabled and running", service=NODE["service"], running=True,
                enabled=True)
metrics = NODE["metrics"]
series = " && ".join(f"grep -q '^{s}[ {{]' \"$m\"" for s in metrics["series"])
wait_for("7-5 /metrics carries its series",
         f"{{ m=$(mktemp) && curl -fs -o \"$m\" {shlex.quote(metrics['url'])} && {series}; r=$?; rm -f \"$m\"; "
         "[ $r = 0 ]; }", metrics["timeout"], [node_restart])
