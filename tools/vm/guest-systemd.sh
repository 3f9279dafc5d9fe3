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

# shellcheck source=tools/vm/guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"

fail_details() {
    echo "vm-guest: --- systemctl --failed ---"
    systemctl --no-pager --failed 2>&1 | head -20
}

step "systemd $(systemctl --version | head -1 | cut -d' ' -f2) is PID 1 ($(cat /proc/1/comm)): $(systemctl is-system-running 2>&1)"
[ -d /run/systemd/system ] || fail "/run/systemd/system missing: systemd is not PID 1"
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
    step "cgroup: $(stat -fc %T /sys/fs/cgroup), controllers $(cat /sys/fs/cgroup/cgroup.subtree_control)"
else
    step "cgroup v1: $(cd /sys/fs/cgroup && echo *)"
fi

make_test_user
open_checkout

step "user@$TUID.service (the test user's systemd and bus)"
systemctl start "user@$TUID.service" || fail "systemctl start user@$TUID.service: $(systemctl status --no-pager "user@$TUID.service" 2>&1 | tail -5)"
for _ in $(seq 100); do
    [ -S "/run/user/$TUID/bus" ] && break
    sleep 0.2
done
[ -S "/run/user/$TUID/bus" ] || fail "no /run/user/$TUID/bus"
step "user manager up: $(cat "/sys/fs/cgroup/user.slice/user-$TUID.slice/user@$TUID.service/cgroup.controllers" 2>/dev/null)"

run_tests "${VM_MARK:-systemd}"
