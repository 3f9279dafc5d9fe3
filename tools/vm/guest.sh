#!/bin/bash
# PID 1 of the test VM, started by the initramfs's /init (tools/vm/init) after
# switch_root into an overlay of the host's / (writable, changes die with the
# guest). Runs as root. Sets up what the vm tests need and runs them:
#
#   1. cgroup v2 alone at /sys/fs/cgroup, every controller enabled at the root
#   2. the test user pyrun-test (as tests/conftest.py makes it), with the
#      subtree user.slice/user-UID.slice/user@UID.service delegated to it as
#      systemd does, every controller enabled in its subtree_control, and a
#      leaf session.scope under it (owned by the user too) that holds this
#      script, pytest and every pyrun it starts
#   3. pytest -m vm in the checkout, output to the virtio-serial port
#      pyrun.out, its exit status to the port pyrun.status
#
# Then it powers the guest off. A failed setup step reports status 120 with
# the step's name in the output.

# shellcheck source=tools/vm/guest-lib.sh
. "$(dirname "$0")/guest-lib.sh"

step "cgroup v2 at /sys/fs/cgroup"
CG=/sys/fs/cgroup
# The guest's /sys is a fresh sysfs, so nothing of the host's hybrid tree is
# here; no v1 hierarchy is mounted (and the kernel runs with cgroup_no_v1=all).
mountpoint -q "$CG" && umount -l "$CG"
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 "$CG" || fail "mount cgroup2"

# enable_all DIR: every controller DIR has, in DIR/cgroup.subtree_control.
enable_all() {
    local c
    for c in $(cat "$1/cgroup.controllers"); do
        echo "+$c" >"$1/cgroup.subtree_control" || fail "enable $c in $1"
    done
}
enable_all "$CG"
step "controllers: $(cat "$CG/cgroup.subtree_control")"

make_test_user

step "delegating a cgroup to $TEST_USER ($TUID:$TGID)"
SLICE="$CG/user.slice/user-$TUID.slice"
DELEGATED="$SLICE/user@$TUID.service"
SCOPE="$DELEGATED/session.scope"
mkdir -p "$SCOPE" || fail "mkdir $SCOPE"
# Controllers on every level above the delegated cgroup, as systemd's
# Delegate=yes leaves them; its own subtree_control is for the user to write.
enable_all "$CG/user.slice"
enable_all "$SLICE"
# delegate DIR: the directory and the files a delegatee writes (cgroup v2
# docs, "Delegation Containment"), owned by the user.
delegate() {
    chown "$TUID:$TGID" "$1" "$1/cgroup.procs" "$1/cgroup.subtree_control" "$1/cgroup.threads" \
        || fail "chown $1"
}
delegate "$DELEGATED"
delegate "$SCOPE"
# This shell (PID 1) into the leaf: everything started from here on lives in
# session.scope, so user@UID.service holds no process of its own and its
# subtree_control can be written ("no internal processes" rule).
echo $$ >"$SCOPE/cgroup.procs" || fail "move into $SCOPE"
# Every controller enabled in user@UID.service too, as systemd --user enables
# its delegated ones there. Not left to the user: enabling cpuset migrates the
# tasks of session.scope to new cpuset state, which the kernel allows only
# for tasks whose scheduling the writer may change (cpuset_can_attach), and
# root's pytest and this shell live there: the user would get EPERM.
enable_all "$DELEGATED"
step "running in $(cat /proc/self/cgroup)"

open_checkout
# Rootless containers need the setuid id mappers from the host (package uidmap).
for b in /usr/bin/newuidmap /usr/bin/newgidmap; do
    [ "$(stat -c %u "$b" 2>/dev/null)" = 0 ] && [ -u "$b" ] \
        || fail "$b is not setuid root in the guest: $(ls -l "$b" 2>&1)"
done

if [ "${VM_MARK:-vm}" = selinux ]; then
    # tools/vm/vm-test --selinux: the kernel runs SELinux (security=selinux)
    # with no policy yet; load the host's (selinux-policy-default), in the
    # mode /etc/selinux/config names (permissive, as the package writes it)
    step "SELinux: load_policy -i"
    load_policy -i || fail "load_policy -i"
    [ "$(cat /sys/fs/selinux/enforce)" = 0 ] || fail "SELinux is enforcing: the guest wants it permissive"
    step "SELinux: $(cat /proc/self/attr/current | tr -d '\0'), permissive"
fi
export PYRUN_TEST_DELEGATED="$DELEGATED"
run_tests "${VM_MARK:-vm}"
