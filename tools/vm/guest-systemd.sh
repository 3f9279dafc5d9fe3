#!/bin/bash
# The test run of `make vm-test-systemd`: started by pyrun-tests.service
# (tools/vm/systemd/) once systemd, PID 1 of the guest, has reached
# basic.target with the system bus. Runs as root:
#
#   1. the test user pyrun-test (as tests/conftest.py makes it) and its own
#      systemd (user@UID.service, with its bus at /run/user/UID/bus), so
#      that rootless --systemd-cgroup has a user manager to ask
#   2. pytest -m systemd (systemd_v1 with --cgroup-v1) in the checkout, output to the virtio-serial port
#      pyrun.out, its exit status to the port pyrun.status
#
# Then it powers the guest off. A failed setup step reports status 120 with
# the step's name in the output.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
umask 022

TOP=$(cd "$(dirname "$0")/../.." && pwd)
RUN="$TOP/.cache/vm/run"            # written by the host before boot
STATUS_PORT=/dev/virtio-ports/pyrun.status

exec >/dev/virtio-ports/pyrun.out 2>&1 </dev/null

finish() {
    echo "$1" >"$STATUS_PORT"
    sync
    /bin/busybox poweroff -f
    echo o >/proc/sysrq-trigger
    sleep 60
}

step() { echo "vm-guest: [$(cut -d' ' -f1 /proc/uptime)s] $*"; }
fail() {
    echo "vm-guest: FAILED: $*"
    echo "vm-guest: --- systemctl --failed ---"
    systemctl --no-pager --failed 2>&1 | head -20
    finish 120
}

VM_PYTEST_ARGS=()
# shellcheck disable=SC1091
[ -f "$RUN/guest.env" ] && . "$RUN/guest.env"

step "systemd $(systemctl --version | head -1 | cut -d' ' -f2) is PID 1 ($(cat /proc/1/comm)): $(systemctl is-system-running 2>&1)"
[ -d /run/systemd/system ] || fail "/run/systemd/system missing: systemd is not PID 1"
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    step "cgroup: $(stat -fc %T /sys/fs/cgroup), controllers $(cat /sys/fs/cgroup/cgroup.subtree_control)"
else
    step "cgroup v1: $(cd /sys/fs/cgroup && echo *)"
fi

step "test user"
TEST_USER=pyrun-test
if ! getent passwd "$TEST_USER" >/dev/null; then
    useradd --system --no-create-home --shell /usr/sbin/nologin "$TEST_USER" || fail "useradd"
fi
for f in /etc/subuid /etc/subgid; do
    grep -q "^$TEST_USER:" "$f" 2>/dev/null || echo "$TEST_USER:300000:65536" >>"$f"
done
TUID=$(id -u "$TEST_USER")

step "permissions for $TEST_USER"
d="$TOP"
while [ "$d" != / ]; do
    [ -n "$(find "$d" -maxdepth 0 -perm -o=x)" ] || chmod o+x "$d" || fail "chmod o+x $d"
    d=$(dirname "$d")
done

step "user@$TUID.service (the test user's systemd and bus)"
systemctl start "user@$TUID.service" || fail "systemctl start user@$TUID.service: $(systemctl status --no-pager "user@$TUID.service" 2>&1 | tail -5)"
for _ in $(seq 100); do
    [ -S "/run/user/$TUID/bus" ] && break
    sleep 0.2
done
[ -S "/run/user/$TUID/bus" ] || fail "no /run/user/$TUID/bus"
step "user manager up: $(cat "/sys/fs/cgroup/user.slice/user-$TUID.slice/user@$TUID.service/cgroup.controllers" 2>/dev/null)"

if [ -n "${VM_SHELL_CMD:-}" ]; then
    step "running: $VM_SHELL_CMD"
    cd "$TOP" || fail "cd $TOP"
    PYRUN_IN_VM=1 bash -c "$VM_SHELL_CMD"
    finish $?
fi

MARK=${VM_MARK:-systemd}
step "pytest -m $MARK"
cd "$TOP" || fail "cd $TOP"
PYRUN_IN_VM=1 PYTHONUNBUFFERED=1 \
    "$TOP/.venv/bin/python" -P -m pytest -v -p no:cacheprovider -m "$MARK" "${VM_PYTEST_ARGS[@]}" tests
finish $?
