#!/bin/sh
# Installs the missing packages of testbed/system-packages.txt, idempotently: silent when all are there.
# Stops the system services apt starts with them (the sandbox runs its own proxy; promtool is all it
# needs of prometheus). Exit 2, with the command to run, where it cannot install: not root, not apt.
set -eu
here=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)
packages=$(sed -e 's/#.*//' "$here/system-packages.txt" | tr -s ' \t\n' ' ')
unwanted="tinyproxy prometheus"

installed() {  # dpkg's own record: "install ok installed"
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

debian_like=no
if [ -r /etc/os-release ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    . /etc/os-release
    case " ${ID:-} ${ID_LIKE:-} " in *" debian "*|*" ubuntu "*) debian_like=yes ;; esac
fi
if [ "$debian_like" != yes ]; then
    echo "deps: this machine is not Debian or Ubuntu; install these packages with its own package manager," >&2
    echo "      then run the command again: $packages" >&2
    exit 2
fi

missing=""
for p in $packages; do installed "$p" || missing="$missing $p"; done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "deps: missing packages:$missing" >&2
        echo "      run: sudo make deps   (or: sudo apt-get install -y$missing)" >&2
        exit 2
    fi
    echo "deps: installing$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The services apt started: stopped and disabled, so they never hold the ports the sandbox uses.
[ "$(id -u)" -eq 0 ] || exit 0
for service in $unwanted; do
    installed "$service" || continue
    if [ -d /run/systemd/system ]; then
        if systemctl is-enabled -q "$service" 2>/dev/null || systemctl is-active -q "$service" 2>/dev/null; then
            echo "deps: stopping and disabling the $service system service (not used by the sandbox)"
            systemctl disable --now -q "$service" 2>/dev/null || systemctl stop "$service" || true
        fi
    elif [ -x "/etc/init.d/$service" ] && service "$service" status >/dev/null 2>&1; then
        echo "deps: stopping the $service system service (not used by the sandbox)"
        service "$service" stop >/dev/null || true
    fi
done

# Every sandbox host is a systemd with its own inotify watchers; the kernel's default of 128 instances
# per user runs out at a handful of hosts ("Too many open files" from systemd-nspawn).
if [ -w /proc/sys/fs/inotify/max_user_instances ] && [ "$(cat /proc/sys/fs/inotify/max_user_instances)" -lt 1024 ]; then
    echo 1024 > /proc/sys/fs/inotify/max_user_instances
fi
