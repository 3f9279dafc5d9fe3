"""Make the sample bundles: their rootfs is generated, never committed.

* ``bundles/hello``: a rootfs holding one static binary built from
  ``native/hello.c``; needs nothing downloaded.
* ``bundles/busybox``: a rootfs made from Debian's static busybox (package
  ``busybox-static``) with every applet linked, plus the hello binary.

Each config.json is ``pyrun spec --rootless`` for the user who runs this,
so the samples run rootless; run as root, they still get a user namespace.

Usage: python bundles/prepare.py [--force]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BUSYBOX_CANDIDATES = ["/bin/busybox", "/usr/bin/busybox"]


def is_static(path: str) -> bool:
    """An ELF file without a PT_INTERP program header needs no loader."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        phoff = int.from_bytes(head[32:40], "little")
        phentsize = int.from_bytes(head[54:56], "little")
        phnum = int.from_bytes(head[56:58], "little")
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            if int.from_bytes(f.read(4), "little") == 3:  # PT_INTERP
                return False
    return True


def build_hello(out: str) -> None:
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cc = os.environ.get("CC", "cc").split()
    subprocess.check_call(cc + ["-static", "-Os", "-s", "-Wall", "-o", out,
                                os.path.join(TOP, "native", "hello.c")])


def stale(out: str) -> bool:
    """The binary is missing or older than native/hello.c."""
    src = os.path.join(TOP, "native", "hello.c")
    return not os.path.exists(out) or os.path.getmtime(out) < os.path.getmtime(src)


def write_config(bundle: str, args: list[str], hostname: str) -> None:
    from pyrun.config.spec import default_spec

    config = default_spec(rootless=True)
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    config["hostname"] = hostname
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(config, f, indent="\t")
        f.write("\n")


def make_hello(force: bool) -> None:
    bundle = os.path.join(HERE, "hello")
    rootfs = os.path.join(bundle, "rootfs")
    if force or stale(os.path.join(rootfs, "hello")):
        build_hello(os.path.join(rootfs, "hello"))
    write_config(bundle, ["/hello"], "hello")


def make_busybox(force: bool) -> None:
    bundle = os.path.join(HERE, "busybox")
    rootfs = os.path.join(bundle, "rootfs")
    if force and os.path.exists(rootfs):
        shutil.rmtree(rootfs)
    if not os.path.exists(os.path.join(rootfs, "bin", "busybox")):
        busybox = next((p for p in BUSYBOX_CANDIDATES if os.path.exists(p) and is_static(p)), None)
        if busybox is None:
            sys.exit("bundles/prepare.py: no static busybox found: apt-get install busybox-static")
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "tmp", "proc", "sys", "dev", "var"):
            os.makedirs(os.path.join(rootfs, d), exist_ok=True)
        os.chmod(os.path.join(rootfs, "tmp"), 0o1777)
        target = os.path.join(rootfs, "bin", "busybox")
        shutil.copy2(busybox, target)
        applets = subprocess.run([target, "--list-full"], capture_output=True, text=True, check=True).stdout
        for applet in applets.split():
            link = os.path.join(rootfs, applet)
            if not os.path.lexists(link):
                os.symlink("/bin/busybox", link)
        with open(os.path.join(rootfs, "etc", "passwd"), "w") as f:
            f.write("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
        with open(os.path.join(rootfs, "etc", "group"), "w") as f:
            f.write("root:x:0:\nnogroup:x:65534:\n")
    if stale(os.path.join(rootfs, "usr", "bin", "hello")):
        build_hello(os.path.join(rootfs, "usr", "bin", "hello"))
    script = ('echo "hello from $(hostname), as $(id -un) (uid $(id -u)) inside;"; '
              'echo "uid_map (inside -> outside -> count): $(cat /proc/self/uid_map)"; '
              'echo "processes:"; ps -o pid,comm; echo "root filesystem:"; ls /')
    write_config(bundle, ["sh", "-c", script], "busybox")


if __name__ == "__main__":
    sys.path.insert(0, TOP)
    force = "--force" in sys.argv
    make_hello(force)
    make_busybox(force)
    print("bundles ready: bundles/hello bundles/busybox")
