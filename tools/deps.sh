#!/bin/sh
# Install the Debian packages pyrun's build, sample bundles and tests need
# (or, given as arguments, those packages: make bench names its own).
# As root: apt-get installs what is missing. Otherwise: sudo if available,
# else print the command to run. Prints nothing when all is present.
set -eu
PKGS="gcc libc6-dev make python3 python3-venv python3-dev libcap-dev libseccomp-dev busybox-static uidmap procps util-linux"
# musl-gcc: the container's init, static, at 17 KB instead of glibc's 690 KB
PKGS="$PKGS musl-tools"
# make vm-test: the emulator, cpio for the initramfs, kmod's depmod for the
# guest kernel's modules, binutils' readelf (comes with gcc).
PKGS="$PKGS qemu-system-x86 cpio kmod binutils xz-utils"
# make vm-test-systemd: systemd as the guest's PID 1, its system bus, the
# test user's systemd (user@UID.service) and its bus
PKGS="$PKGS systemd dbus dbus-user-session libpam-systemd"
# tests/test_podman.py: podman, runc as the reference runtime, slirp4netns
# for rootless networking, catatonit for --init
PKGS="$PKGS podman runc slirp4netns catatonit"
# tests/test_containerd.py: a private containerd, its shim and ctr
PKGS="$PKGS containerd"
# make test-cri (tools/cri): Go builds crictl and critest; CNI's bridge,
# host-local, portmap and loopback give the pods a private network; patch
# applies tools/cri/critest-pod-slice.patch to the cri-tools source
PKGS="$PKGS golang-go containernetworking-plugins iproute2 patch"
# networking: nftables for the bridge's NAT, passt for the pasta mode
PKGS="$PKGS nftables passt"
# docs/TOUR.md (and tests/test_tour.py, which runs it): jq edits the configs
PKGS="$PKGS jq"
# tests/test_terminal.py: strace's syscall delay injection makes a race happen
PKGS="$PKGS strace"
# AppArmor's userspace, as on any stock Debian or Ubuntu host (docker.io
# recommends it): the VM's Debian kernel has AppArmor on, so with it podman
# sends its default profile (process.apparmorProfile) in make
# vm-test-systemd, and tests/test_lsm_vm.py loads its own profile with
# apparmor_parser. On a host kernel without AppArmor it does nothing.
PKGS="$PKGS apparmor"
# pyrun checkpoint/restore (tests/test_checkpoint_vm.py, in make vm-test): CRIU,
# its Python RPC client pycriu (in the criu package) and the protobuf it needs
PKGS="$PKGS criu python3-protobuf"
# make conformance: Go 1.19 builds the OCI's runtime-tools suite (vendored, offline)
PKGS="$PKGS golang-go"
# tests/test_docker.py: Debian's docker.io (dockerd 20.10, its client, and
# tini, which the test's private dockerd has as its namespaces' PID 1); the
# test uses the containerd and runc above. Installed without its Recommends
# (needrestart would restart the host's services after every apt run;
# cgroupfs-mount and apparmor are not the test's). What installing it does:
# a `docker` group, and docker.service and docker.socket enabled for systemd;
# where systemd is not PID 1 (CI, this project's machines) nothing starts and
# no network, bridge or iptables rule changes (invoke-rc.d finds no runlevel).
# On a host booted with systemd, apt starts dockerd, which makes docker0 and
# its iptables rules: `systemctl disable --now docker.socket docker.service`
# undoes that; the test never uses that daemon.
# make vm-test-selinux: Debian's SELinux policy (and load_policy), which the
# guest booted with SELinux on loads; on a host kernel without SELinux it is
# files under /etc/selinux that nothing loads. Without its Recommends:
# setools would pull in graphviz, matplotlib, gdal...
NORECOMMENDS="docker.io selinux-policy-default"
[ $# -gt 0 ] && PKGS="$*" && NORECOMMENDS=""
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
missing_norec=""
for p in $NORECOMMENDS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing_norec="$missing_norec $p"
done
[ -z "$missing$missing_norec" ] && exit 0
echo "installing Debian packages:$missing$missing_norec"
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "pyrun: missing Debian packages:$missing$missing_norec" >&2
    [ -z "$missing" ] || echo "pyrun: as root, run: apt-get install -y$missing" >&2
    [ -z "$missing_norec" ] || echo "pyrun: as root, run: apt-get install -y --no-install-recommends$missing_norec" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
[ -z "$missing" ] || $SUDO apt-get install -y -qq $missing
# shellcheck disable=SC2086
[ -z "$missing_norec" ] || $SUDO apt-get install -y -qq --no-install-recommends $missing_norec
