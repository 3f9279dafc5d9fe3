# Sourced by both guest scripts (tools/vm/guest.sh, PID 1 of the plain VM, and
# tools/vm/guest-systemd.sh, run by systemd): what every test run in the guest
# shares. Output goes to the virtio-serial port pyrun.out, the exit status to
# pyrun.status, then the guest powers off; a failed setup step reports status
# 120 with the step's name in the output.

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8
umask 022

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
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

# Each step with the guest's uptime (boot time is the first one's).
step() { echo "vm-guest: [$(cut -d' ' -f1 /proc/uptime)s] $*"; }
# A script may define fail_details to print more (systemd: the failed units).
fail() {
    echo "vm-guest: FAILED: $*"
    declare -F fail_details >/dev/null && fail_details
    finish 120
}

# Host-written settings: VM_PYTEST_ARGS (a bash array, quoted by the host),
# VM_MARK, VM_SHELL_CMD.
VM_PYTEST_ARGS=()
# shellcheck disable=SC1091
[ -f "$RUN/guest.env" ] && . "$RUN/guest.env"

# make_test_user: the test user pyrun-test, exactly as tests/conftest.py's
# ensure_test_user makes it (the host's, if the host suite made it, is kept:
# /etc comes from the host); sets TEST_USER, TUID, TGID.
make_test_user() {
    step "test user"
    TEST_USER=pyrun-test
    if ! getent passwd "$TEST_USER" >/dev/null; then
        useradd --system --no-create-home --shell /usr/sbin/nologin "$TEST_USER" || fail "useradd"
    fi
    local f
    for f in /etc/subuid /etc/subgid; do
        grep -q "^$TEST_USER:" "$f" 2>/dev/null || echo "$TEST_USER:300000:65536" >>"$f"
    done
    TUID=$(id -u "$TEST_USER")
    TGID=$(id -g "$TEST_USER")
}

# open_checkout: the checkout may sit under a 0700 directory (/root): let
# others traverse its ancestors. Directories are copied up to the overlay
# without their contents, so this is cheap, and it changes nothing on the host.
open_checkout() {
    step "permissions for $TEST_USER"
    local d="$TOP"
    while [ "$d" != / ]; do
        [ -n "$(find "$d" -maxdepth 0 -perm -o=x)" ] || chmod o+x "$d" || fail "chmod o+x $d"
        d=$(dirname "$d")
    done
}

# run_tests MARK: pytest -m MARK in the checkout (-P: the installed, compiled
# package from the venv, not the checkout's pyrun/), or, as an exploration
# hook, VM_SHELL_CMD (tools/vm/vm-test --shell CMD) instead; then power off
# with its status.
run_tests() {
    cd "$TOP" || fail "cd $TOP"
    export PYRUN_IN_VM=1
    if [ -n "${VM_SHELL_CMD:-}" ]; then
        step "running: $VM_SHELL_CMD"
        bash -c "$VM_SHELL_CMD"
        finish $?
    fi
    step "pytest -m $1"
    PYTHONUNBUFFERED=1 "$TOP/.venv/bin/python" -P -m pytest -v -p no:cacheprovider -m "$1" \
        "${VM_PYTEST_ARGS[@]}" tests
    finish $?
}
