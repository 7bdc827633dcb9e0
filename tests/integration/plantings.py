"""Appendix-B symptoms (and what lies just outside it) planted the way operators really end up with them.

Data, not code: each case is the shell that plants it (run as root on the deployed host), the items
`inv troubleshoot` must find (every other item must not be found), text its evidence must show (the
file and line that really set the value), whether `--fix` clears it, and what must hold afterwards.
test_plantings.py and test_plantings_second_share.py run the cases, half each, against two converged
sandbox hosts side by side: plant, check, fix, verify, restore.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

q = shlex.quote
VLLM_ENV = "/app/vllm-server/vllm.env"
APP = "/app/ai-server"
DOTENV = f"{APP}/.env"
DROPIN_DIR = "/etc/systemd/system/vllm.service.d"
APP_DROPIN_DIR = "/etc/systemd/system/ai-server.service.d"
SHIPPER = "/etc/alloy/config.alloy"  # the default log shipper's config
SITE = f"{APP}/.venv/lib/python3*/site-packages"
LOG = "/var/log/dojangkok/production"
EXPORTER_3 = "3.3.9-3.6.1"  # the guide's dcgm-exporter tag, built for DCGM 3 (libdcgm.so.3)
GO_BUILD = ("env PATH=/usr/lib/go/bin:/usr/local/bin:/usr/bin:/bin HOME=/root GOPATH=/opt/l4-runbook/go "
            "GOCACHE=/opt/l4-runbook/go/cache GOTOOLCHAIN=local make binary")


@dataclass(frozen=True)
class Planting:
    id: str
    plant: str  # shell, as root
    found: tuple[str, ...]  # exactly these items are found (no other item is)
    evidence: str = ""  # shown in the first found item's summary or evidence
    fix: bool = True  # `--fix` clears every found item (False: a person's step, or nothing to fix)
    after: str = ""  # shell that must succeed after the fix (a dated backup exists, DCGM 4 is kept, ...)
    settle: str = ""  # shell that waits until the symptom shows (a crash loop)
    restore: str = ""  # shell that undoes what --fix does not (always run at the end of the case)


def dropin(name: str, *lines: str, unit: str = "vllm", restart: bool = True) -> str:
    folder = DROPIN_DIR if unit == "vllm" else APP_DROPIN_DIR
    body = "\\n".join(["[Service]", *lines])
    return (f"mkdir -p {folder} && printf '{body}\\n' > {folder}/{name} && systemctl daemon-reload"
            + (f" && systemctl restart {unit}" if restart else ""))


def exec_dropin(name: str, *lines: str, edit: str = "cat", unit: str = "vllm") -> str:
    """A drop-in that resets ExecStart and sets the unit's own ExecStart again, passed through *edit* (a
    filter over its lines): how `systemctl edit` users change one flag."""
    folder = DROPIN_DIR if unit == "vllm" else APP_DROPIN_DIR
    head = "".join(f"echo {q(line)}; " for line in ["[Service]", *lines, "ExecStart="])
    return (f"mkdir -p {folder} && {{ {head}awk '/^ExecStart=/{{p=1}} p{{print}} p&&!/\\\\$/{{exit}}' "
            f"/etc/systemd/system/{unit}.service | {edit}; }} > {folder}/{name} && systemctl daemon-reload && "
            f"systemctl restart {unit}")


def crashed(unit: str = "vllm") -> str:
    """Wait until the unit has crashed at least once after the plant."""
    return (f"for i in $(seq 90); do s=$(systemctl show -p SubState,NRestarts,ActiveState {unit} | tr '\\n' ' '); "
            "case \"$s\" in *auto-restart*|*failed*|*NRestarts=[1-9]*) exit 0;; esac; sleep 0.5; done; exit 1")


# A planting that restarts vLLM but breaks nothing it needs: wait until it serves again, so the slow
# start of B-12 (vLLM still loading) is not what the check sees.
VLLM_READY = ("for i in $(seq 240); do curl -sf -o /dev/null http://127.0.0.1:8001/health && exit 0; sleep 0.5; "
              "done; exit 1")


def env_line(key: str, line: str, path: str = VLLM_ENV) -> str:
    """Replace KEY=... in *path* with *line* (as an editor would)."""
    return f"sed -i 's|^{key}=.*|{line}|' {path}"


ASIDE = f"ls {DROPIN_DIR}/*.l4rb-aside-* && ! ls {DROPIN_DIR}/*.conf"
NO_DROPINS = f"rm -rf {DROPIN_DIR} {APP_DROPIN_DIR} && systemctl daemon-reload"

CASES: tuple[Planting, ...] = (
    # -- drop-ins that override the unit (B-3, B-10, S-2, S-1) ---------------------------------------------
    Planting("dropin-lora-broken-json", dropin(
        "lora.conf", "ExecStart=", "ExecStart=/app/vllm-server/venv/bin/vllm serve ${SERVE_MODEL} --port ${SERVE_PORT} "
        "--enforce-eager --enable-lora --lora-modules \\x27{\"name\": \"easycontract\", \"path\":}\\x27"),
        ("B-3",), f"{DROPIN_DIR}/lora.conf", settle=crashed(), after=ASIDE, restore=NO_DROPINS),
    # The guide's mistake in a drop-in: the adapters through the environment, not one JSON word each.
    Planting("dropin-lora-from-env",
             f"echo 'VLLM_LORA_MODULES={{\"name\":\"easycontract\",\"path\":\"a\"}} "
             f"{{\"name\":\"checklist\",\"path\":\"b\"}}' >> {VLLM_ENV} && "
             + exec_dropin("lora-env.conf", edit="sed -e \"/'{/d\" -e 's/--lora-modules .*/--lora-modules "
                                                 "${VLLM_LORA_MODULES} \\\\/'"),
             ("B-3",), "environment variable", settle=crashed(), after=ASIDE, restore=NO_DROPINS),
    Planting("dropin-no-enforce-eager",
             exec_dropin("eager.conf", edit="sed '$ s/$/ --no-enforce-eager/'"),
             ("B-10",), f"{DROPIN_DIR}/eager.conf", settle=crashed(), after=ASIDE, restore=NO_DROPINS),
    Planting("dropin-enforce-eager-removed",
             exec_dropin("override.conf", edit="grep -v -- --enforce-eager"),
             ("B-10",), "ExecStart has no --enforce-eager", settle=crashed(), after=ASIDE, restore=NO_DROPINS),
    Planting("dropin-extra-envfile", "printf 'SERVE_MAX_MODEL_LEN=lots\\n' > /etc/vllm-extra.env && "
             + dropin("extra.conf", "EnvironmentFile=/etc/vllm-extra.env"),
             ("S-2",), "/etc/vllm-extra.env:1", settle=crashed(), after=ASIDE,
             restore=NO_DROPINS + " && rm -f /etc/vllm-extra.env"),
    Planting("dropin-unknown-flag", exec_dropin("flag.conf", edit="sed '$ s/$/ --bogus-flag/'"),
        ("S-1",), "unrecognized arguments: --bogus-flag", settle=crashed(), after=ASIDE, restore=NO_DROPINS),
    Planting("app-dropin-bad-port", dropin(
        "port.conf", "ExecStart=", f"ExecStart={APP}/.venv/bin/uvicorn app.main:app --port notaport", unit="ai-server"),
        ("S-1",), f"{APP_DROPIN_DIR}/port.conf", settle=crashed("ai-server"),
        after=f"ls {APP_DROPIN_DIR}/*.l4rb-aside-*", restore=NO_DROPINS),

    # -- vllm.env values as systemd reads them (S-2) ------------------------------------------------------
    Planting("env-comment-after-max-model-len", env_line("SERVE_MAX_MODEL_LEN", "SERVE_MAX_MODEL_LEN=32768   # note"),
             ("S-2",), "'32768   # note'"),
    Planting("env-comment-after-utilization",
             env_line("SERVE_GPU_MEMORY_UTILIZATION", "SERVE_GPU_MEMORY_UTILIZATION=0.85 # tuned"),
             ("S-2",), "vllm.env:"),
    Planting("env-comment-quoted-value", env_line("SERVE_MAX_LORA_RANK", "SERVE_MAX_LORA_RANK=64 ;rank"),
             ("S-2",), "--max-lora-rank"),
    Planting("env-empty-port", env_line("SERVE_PORT", "SERVE_PORT="), ("S-2",), "--port"),
    Planting("env-dtype-comment", env_line("SERVE_DTYPE", "SERVE_DTYPE=bfloat16 # L4 does bf16"), ("S-2",),
             "--dtype"),
    Planting("env-comment-crash-loop",
             env_line("SERVE_MAX_MODEL_LEN", "SERVE_MAX_MODEL_LEN=8192 # was 32768") + " && systemctl restart vllm",
             ("S-2",), "--max-model-len", settle=crashed()),
    Planting("env-own-line-comment-is-fine", f"sed -i '1a # a note on its own line' {VLLM_ENV}", ()),

    # -- the app's .env as python-dotenv reads it (B-15) -------------------------------------------------
    Planting("dotenv-export-empty-key", f"echo 'export VLLM_API_KEY=\"\"' >> {DOTENV}", ("B-15",),
             "VLLM_API_KEY is empty"),
    Planting("dotenv-spaced-empty-key", f"echo 'VLLM_API_KEY = ' >> {DOTENV}", ("B-15",), "VLLM_API_KEY is empty"),
    Planting("dotenv-other-key", f"echo 'VLLM_API_KEY=sk-not-the-one-vllm-has' >> {DOTENV}", ("B-15",),
             "differs"),
    Planting("dotenv-key-removed", f"sed -i '/^VLLM_API_KEY=/d' {DOTENV}", ("B-15",), "VLLM_API_KEY is absent"),
    Planting("dotenv-export-same-key-is-fine",
             f"sed -i 's/^VLLM_API_KEY=/export VLLM_API_KEY=/' {DOTENV}", (), restore=""),
    Planting("dotenv-quoted-key-with-comment-is-fine",
             f"sed -i \"s/^VLLM_API_KEY=\\(.*\\)$/VLLM_API_KEY='\\1'  # the key/\" {DOTENV}", ()),
    Planting("vllm-key-empty", env_line("VLLM_API_KEY", "VLLM_API_KEY="), ("B-15",), "vLLM runs without the key"),

    # -- the log shipper's journal matches (B-19); Alloy is the default shipper ---------------------------
    Planting("alloy-or-of-two-units",
             f"sed -i 's|matches *= \"_SYSTEMD_UNIT=ai-server.service\"|matches = \"_SYSTEMD_UNIT=ai-server.service "
             f"_SYSTEMD_UNIT=vllm.service\"|' {SHIPPER}", ("B-19",), "is an OR of"),
    Planting("alloy-unit-without-suffix",
             f"sed -i 's|\"_SYSTEMD_UNIT=vllm.service\"|\"_SYSTEMD_UNIT=vllm\"|' {SHIPPER}", ("B-19",),
             "matches no entry"),
    Planting("alloy-no-matches", f"sed -i '/matches *= \"_SYSTEMD_UNIT=vllm.service\"/d' {SHIPPER}", ("B-19",),
             "has no `matches`"),
    Planting("alloy-priority-and-unit-is-fine",
             f"sed -i 's|\"_SYSTEMD_UNIT=vllm.service\"|\"_SYSTEMD_UNIT=vllm.service PRIORITY=6\"|' {SHIPPER}", (),
             restore=f"sed -i 's| PRIORITY=6||' {SHIPPER}"),
    Planting("alloy-match-without-equals",
             f"sed -i 's|\"_SYSTEMD_UNIT=vllm.service\"|\"_SYSTEMD_UNIT vllm.service\"|' {SHIPPER}", ("B-19",),
             "terms the journal refuses"),

    # -- packages that do not import (B-14) ----------------------------------------------------------------
    Planting("half-removed-pythonjsonlogger", f"rm -rf {SITE}/pythonjsonlogger", ("B-14",),
             "import pythonjsonlogger", after=f"{APP}/.venv/bin/python -c 'import pythonjsonlogger'"),
    Planting("half-removed-instrumentator", f"rm -rf {SITE}/prometheus_fastapi_instrumentator", ("B-14",),
             "prometheus_fastapi_instrumentator",
             after=f"{APP}/.venv/bin/python -c 'import prometheus_fastapi_instrumentator'"),
    Planting("half-removed-httpx", f"rm -rf {SITE}/httpx/_client.py", ("B-14",), "import httpx",
             after=f"{APP}/.venv/bin/python -c 'import httpx'"),

    # -- apt sources and DCGM (B-6, B-7) -------------------------------------------------------------------
    Planting("duplicate-cuda-source-list",
             "src=$(grep -lr 'l4rb-sandbox\\|cuda' /etc/apt/sources.list.d/*.list | head -1); "
             "sed 's/\\[trusted=yes\\]/[signed-by=\\/usr\\/share\\/keyrings\\/cuda-archive-keyring.gpg]/' \"$src\" "
             "> /etc/apt/sources.list.d/cuda-copy.list", ("B-6",), "Conflicting values",
             after="ls /etc/apt/sources.list.d/cuda-copy.list.l4rb-aside-* && ! apt-cache policy 2>&1 | grep -q '^E:'",
             restore="rm -f /etc/apt/sources.list.d/cuda-copy.list*"),
    Planting("duplicate-cuda-source-deb822",
             "src=$(grep -lr 'l4rb-sandbox\\|cuda' /etc/apt/sources.list.d/*.list | head -1); "
             "set -- $(sed -n 's/^deb \\[[^]]*\\] *//p' \"$src\"); "
             "printf 'Types: deb\\nURIs: %s\\nSuites: %s\\nSigned-By: /usr/share/keyrings/cuda-archive-keyring.gpg\\n'"
             " \"$1\" \"$2\" > /etc/apt/sources.list.d/cuda-copy.sources", ("B-6",), "Conflicting values",
             after="! apt-cache policy 2>&1 | grep -q '^E:'",
             restore="rm -f /etc/apt/sources.list.d/cuda-copy.sources*"),
    # The stack runs DCGM 4 (dcgm.major = "auto" on a repository that offers it), as a host upgraded to it does;
    # its exporter is then rebuilt by hand from the guide's 3.x tag (B-7 as an upgraded host meets it).
    Planting("dcgm-4-with-the-guide-exporter",
             f"rm -rf /tmp/exporter-3 && git clone -q -c advice.detachedHead=false --branch {EXPORTER_3} "
             "file:///opt/l4rb-sandbox/monitoring/dcgm-exporter.git /tmp/exporter-3 && cd /tmp/exporter-3 && "
             f"{GO_BUILD} >/dev/null && install -m 0755 cmd/dcgm-exporter/dcgm-exporter /usr/local/bin/dcgm-exporter "
             "&& systemctl restart dcgm-exporter", ("B-7",), "libdcgm.so.3",
             settle=crashed("dcgm-exporter"),
             # DCGM 4 stays 4 (never a downgrade to datacenter-gpu-manager 3).
             after="dpkg-query -W -f='${db:Status-Status}' datacenter-gpu-manager-4-core | grep -qx installed && "
                   "! dpkg-query -W -f='${db:Status-Status}' datacenter-gpu-manager 2>/dev/null | grep -qx installed",
             restore="rm -rf /tmp/exporter-3"),
    Planting("dcgm-counters-truncated", "sed -i '/GPU_TEMP/d' /etc/dcgm-exporter/default-counters.csv && "
             "systemctl restart dcgm-exporter", ("B-9",), ":9400/metrics",
             settle="for i in $(seq 120); do curl -sf -o /dev/null localhost:9400/metrics && exit 0; sleep 0.5; done"),

    # -- outside appendix B: services and what the app needs (S-1, S-3, B-18) -------------------------------
    Planting("vllm-stopped", "systemctl stop vllm", ("S-1",), "vllm.service is stopped"),
    Planting("app-stopped", "systemctl stop ai-server", ("S-1",), "ai-server.service is stopped"),
    Planting("dotenv-owned-by-root", f"chown root:root {DOTENV}", ("S-3",), "cannot read it",
             after=f"runuser -u ubuntu -- test -r {DOTENV}"),
    Planting("dotenv-mode-000", f"chmod 000 {DOTENV}", ("S-3",), "cannot read it"),
    Planting("resources-s3-deleted", f"rm -rf {APP}/resources/s3", ("S-3",), "resources/s3: missing",
             after=f"test -d {APP}/resources/s3"),
    # A file where the directory belongs is not the runbook's to delete: the fix says so and stops.
    Planting("resources-s3-is-a-file", f"rm -rf {APP}/resources/s3 && touch {APP}/resources/s3", ("S-3",),
             "regular empty file", fix=False,
             restore=f"rm -f {APP}/resources/s3 && install -d -o ubuntu -g ubuntu {APP}/resources/s3"),
    Planting("port-8000-held-by-another-program",
             "systemctl stop ai-server && systemd-run --unit=squatter python3 -m http.server 8000 && sleep 1 && "
             "systemctl start ai-server", ("S-3",), "held by python3", fix=False,
             settle=crashed("ai-server"),
             restore="systemctl stop squatter; systemctl reset-failed squatter ai-server; systemctl restart ai-server"),
    Planting("log-dir-symlink-is-fine",
             f"mkdir -p /srv/applogs && chown ubuntu:ubuntu /srv/applogs && cp -a {LOG}/. /srv/applogs/ && "
             f"rm -rf {LOG} && ln -s /srv/applogs {LOG}", (),
             restore=f"rm -f {LOG} && mkdir -p {LOG} && cp -a /srv/applogs/. {LOG}/ && chown ubuntu:ubuntu {LOG} "
                     "&& rm -rf /srv/applogs && systemctl restart ai-server"),
    Planting("log-dir-parent-symlink-is-fine",
             "mv /var/log/dojangkok /srv/dojangkok && ln -s /srv/dojangkok /var/log/dojangkok", (),
             restore="rm -f /var/log/dojangkok && mv /srv/dojangkok /var/log/dojangkok"),
    Planting("log-dir-missing", f"rm -rf {LOG}", ("B-18",), "does not exist", after=f"test -d {LOG}"),
    Planting("log-dir-root-owned", f"chown root:root {LOG} && chmod 755 {LOG}", ("B-18",), "not writable by"),
    Planting("loki-url-wrong-port", f"sed -i 's|:3100/loki|:3999/loki|' {SHIPPER} && systemctl restart alloy",
             ("B-17",), f"push URL from {SHIPPER}", fix=False,
             restore=f"sed -i 's|:3999/loki|:3100/loki|' {SHIPPER} && systemctl restart alloy"),
    # -- current components (C-1, C-2) --------------------------------------------------------------------
    Planting("env-guide-vllm-port", f"echo 'VLLM_PORT=8001' >> {VLLM_ENV} && systemctl restart vllm", ("C-2",),
             "vllm.env:", after=f"! grep -q '^VLLM_PORT=' {VLLM_ENV}", settle=VLLM_READY),
    Planting("dropin-guide-vllm-host", dropin("host.conf", "Environment=VLLM_HOST=0.0.0.0"), ("C-2",),
             f"{DROPIN_DIR}/host.conf", after=ASIDE, restore=NO_DROPINS, settle=VLLM_READY),
)


def share(index: int, of: int = 2) -> tuple[Planting, ...]:
    """Every *of*-th case from *index*: the table split over hosts that run side by side, each share
    with every family in it (the cases are listed family by family)."""
    return CASES[index::of]
