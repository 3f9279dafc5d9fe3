#!/bin/sh
# Install what `make bench` compares pyrun with: runc, crun, and the two
# static inits (tini, catatonit) it measures as PID 1, plus GNU time (peak
# RSS) and util-linux (unshare). As tools/deps.sh: apt-get as root, else
# sudo, else print the command. Prints nothing when all is present.
set -eu
PKGS="runc crun tini catatonit time util-linux passwd"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "installing Debian packages for the benchmark:$missing"
if [ "$(id -u)" = 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "bench: missing Debian packages:$missing" >&2
    echo "bench: as root, run: apt-get install -y$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq $missing
