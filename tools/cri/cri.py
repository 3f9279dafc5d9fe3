"""The kubelet's path to a runtime, on one machine and without a network:
containerd's CRI plugin, a runc v2 shim, and ``BinaryName`` = the runtime.

``CriEnv`` is a private containerd (tests/containerd_env.py) with the CRI
plugin, in its own mount and network namespace (unshare): a tmpfs over
/run there holds the shims' sockets, the runtime's state and the pods'
network namespaces; a CNI bridge on a private subnet lives only in that
network namespace. crictl and critest enter both namespaces (nsenter).
The images critest names are built here from Debian's busybox and
imported under exactly those names, so nothing is pulled.

Used by tools/cri/test-cri (``make test-cri``) and tests/test_cri.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(TOP, "tests"))
from containerd_env import CONTAINERD, CTR, Containerd, config_head  # noqa: E402
from proctree import children  # noqa: E402

CACHE = os.environ.get("CRI_TOOLS_CACHE", os.path.join(TOP, ".cache", "cri-tools"))
TARBALL = os.environ.get("CRI_TOOLS_TARBALL",
                         os.path.join(TOP, "..", "shared", "conformance", "cri-tools-v1.26.1.tar.gz"))
CNI_BIN = "/usr/lib/cni"
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
E2E = "registry.k8s.io/e2e-test-images/"
STAGING = "gcr.io/k8s-staging-cri-tools/"
PAUSE_IMAGE = "registry.k8s.io/pause:3.6"
BUSYBOX_IMAGE = E2E + "busybox:1.29-2"

CONFIG = config_head(cri=True) + """\
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%(pause)s"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "%(default)s"
    snapshotter = "overlayfs"
%(runtimes)s  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "%(cni_bin)s"
    conf_dir = "{d}/cni"
"""

# One handler (crictl runp --runtime NAME): the runc v2 shim running BinaryName
RUNTIME = """\
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%(name)s]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.%(name)s.options]
        BinaryName = "%(binary)s"
        SystemdCgroup = %(systemd)s
"""

CNI = {
    "cniVersion": "0.4.0", "name": "pyrun-cri", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.77.0/24"}]],
                  "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "{d}/cni-ipam"}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}

# containerd in its own mount, network and IPC namespace (critest's ipcmk
# makes its segment there); /run a tmpfs there
NAMESPACES = ("unshare", "--mount", "--net", "--ipc", "--propagation", "private", "sh", "-c",
              'ip link set lo up && mount -t tmpfs -o mode=755 cri-run /run && exec "$@"', "sh")

# With SystemdCgroup = true the runtime asks systemd for each container's
# scope over D-Bus: the host's /run/systemd and /run/dbus (the system bus,
# systemd's private socket) stay reachable through the tmpfs over /run,
# bound in from a view of /run taken before it is covered ({d}/host-run)
NAMESPACES_SYSTEMD = ("unshare", "--mount", "--net", "--ipc", "--propagation", "private", "sh", "-c",
                      'ip link set lo up && mkdir "$0/host-run" && mount --bind /run "$0/host-run" && '
                      'mount -t tmpfs -o mode=755 cri-run /run && mkdir /run/systemd /run/dbus && '
                      'mount --rbind "$0/host-run/systemd" /run/systemd && '
                      'mount --bind "$0/host-run/dbus" /run/dbus && umount -l "$0/host-run" && exec "$@"')

PAUSE_C = r"""
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
static void stop(int s) { (void)s; _exit(0); }
static void reap(int s) { (void)s; while (waitpid(-1, 0, WNOHANG) > 0) {} }
int main(void) {
    signal(SIGTERM, stop); signal(SIGINT, stop); signal(SIGCHLD, reap);
    for (;;) pause();
}
"""

# critest's nonewprivs image: a set-user-ID root program that says what it got
NNP_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) { printf("Effective uid: %d\n", (int)geteuid()); return 0; }
"""


# critest's nginx image: a process named nginx whose command line says
# "master process" and that writes /var/run/nginx.pid (the HostPID and
# ContainerPID specs look for these), serving HTTP through busybox's httpd
# on the port given (80; the hostnet image's 12003)
NGINX_C = r"""
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static pid_t child;
static void stop(int s) { if (child > 0) kill(child, s); _exit(0); }
int main(int argc, char **argv) {
    const char *port = argc > 1 ? argv[1] : "80";
    if (!strstr(argv[0], "master process")) {
        execl("/usr/sbin/nginx", "nginx: master process nginx -g daemon off;", port, (char *)0);
        return 127;
    }
    FILE *f = fopen("/var/run/nginx.pid", "w");
    if (f) { fprintf(f, "%d\n", (int)getpid()); fclose(f); }
    signal(SIGTERM, stop); signal(SIGINT, stop); signal(SIGQUIT, stop);
    child = fork();
    if (child == 0) {
        execl("/bin/busybox", "httpd", "-f", "-h", "/var/www", "-p", port, (char *)0);
        _exit(127);
    }
    int status;
    while (waitpid(child, &status, 0) < 0) {}
    return 1;
}
"""


def run(*argv: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, **kw)


# ------------------------------------------------------------------ tools

# critest driven as a kubelet with the systemd driver can be (the patch says why)
PATCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "critest-pod-slice.patch")


def _patch_key() -> str:
    with open(PATCH, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def build(tool: str) -> str:
    """crictl or critest (a ginkgo test binary), built once into CACHE from
    the vendored tarball with PATCH applied (critest is rebuilt when PATCH
    changes); the caller holds /tmp/pyrun-heavy.lock."""
    out = os.path.join(CACHE, tool)
    key = _patch_key()
    if os.path.exists(out) and (tool == "crictl" or _read(out + ".patch") == key):
        return out
    os.makedirs(CACHE, exist_ok=True)
    src = os.path.join(CACHE, "cri-tools")
    if _read(os.path.join(src, ".pyrun-patch")) != key:
        shutil.rmtree(src, ignore_errors=True)
        run("tar", "xzf", TARBALL, "-C", CACHE)
        with open(PATCH) as f:
            run("patch", "-p1", "--quiet", cwd=src, stdin=f)
        with open(os.path.join(src, ".pyrun-patch"), "w") as f:
            f.write(key)
    env = dict(os.environ, GOFLAGS="-mod=vendor", GOPROXY="off", CGO_ENABLED="0",
               GOCACHE=os.path.join(CACHE, "gocache"))
    verb = ["build"] if tool == "crictl" else ["test", "-c"]
    run("go", *verb, "-o", out + ".new", f"./cmd/{tool}", cwd=src, env=env)
    os.rename(out + ".new", out)
    with open(out + ".patch", "w") as f:
        f.write(key)
    return out


def built() -> bool:
    """crictl and critest (with PATCH as it is now) are in CACHE."""
    return (os.path.exists(os.path.join(CACHE, "crictl"))
            and _read(os.path.join(CACHE, "critest.patch")) == _patch_key())


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


# ----------------------------------------------------------------- images

def _busybox() -> str:
    """Debian's dynamic busybox (its sh forks ls, as a real image's does),
    fetched with apt-get download; busybox-static if that cannot be had."""
    out = os.path.join(CACHE, "busybox")
    if os.path.exists(out):
        return out
    os.makedirs(CACHE, exist_ok=True)  # tests/test_cri.py makes images before it builds crictl
    d = tempfile.mkdtemp(dir=CACHE)
    try:
        subprocess.run(["apt-get", "download", "busybox"], cwd=d, check=True, capture_output=True)
        deb = next(f for f in os.listdir(d) if f.endswith(".deb"))
        run("dpkg-deb", "-x", os.path.join(d, deb), os.path.join(d, "x"))
        shutil.copy2(os.path.join(d, "x", "bin", "busybox"), out + ".new")
    except (subprocess.CalledProcessError, StopIteration, OSError):
        shutil.copy2("/bin/busybox", out + ".new")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    os.rename(out + ".new", out)
    return out


def _static(name: str, source: str) -> str:
    out = os.path.join(CACHE, name)
    if not os.path.exists(out):
        os.makedirs(CACHE, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", suffix=".c", dir=CACHE) as c:
            c.write(source)
            c.flush()
            run("gcc", "-static", "-O2", "-o", out, c.name)
    return out


class Layer:
    """A tar layer built in memory: files with their modes, owned by root."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name.lstrip("/"))
        info.type, info.mode, info.mtime = kind, mode, 0
        return info

    def dir(self, name: str, mode: int = 0o755) -> None:
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))

    def hardlink(self, name: str, target: str) -> None:
        info = self._info(name, tarfile.LNKTYPE, 0o755)
        info.linkname = target.lstrip("/")
        self.tar.addfile(info)

    def blob(self) -> tuple[bytes, str]:
        """(gzip bytes, diff id)."""
        self.tar.close()
        raw = self.buf.getvalue()
        return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


# What critest runs that Debian's busybox lacks, as far as critest uses it
TOOLS = {
    "pgrep": '#!/bin/sh\n# pgrep NAME: the pids whose command name matches\n'
             'for d in /proc/[0-9]*; do read -r c < "$d/comm" 2>/dev/null || continue\n'
             '  echo "$c" | grep -q -- "$1" && echo "${d#/proc/}"; done\n',
    "ipcs": '#!/bin/sh\n# ipcs -m: the shared memory segments (shmid is the 2nd column)\n'
            'cat /proc/sysvipc/shm\n',
}

PASSWD = ("root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
          "www-data:x:33:33:www-data:/var/www:/bin/false\n"
          "default-user:x:1000:1000::/home/default-user:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
GROUP = ("root:x:0:\ndaemon:x:1:\nwww-data:x:33:\ndefault-user:x:1000:\n"
         "group-defined-in-image:x:50000:default-user\nnogroup:x:65534:\n")


def _base_layer() -> Layer:
    """busybox with its applet links, the libraries its ELF interpreter loads,
    /etc/passwd and /etc/group, and a page for the web servers."""
    bb = _busybox()
    layer = Layer()
    for d in ("/bin", "/sbin", "/usr", "/usr/bin", "/usr/sbin", "/etc", "/tmp", "/proc", "/sys", "/dev",
              "/root", "/var", "/var/run", "/var/www", "/home", "/home/default-user", "/lib", "/lib64",
              "/lib/x86_64-linux-gnu"):
        layer.dir(d, 0o1777 if d == "/tmp" else 0o755)
    with open(bb, "rb") as f:
        layer.file("/bin/busybox", f.read(), 0o755)
    ldd = subprocess.run(["ldd", bb], capture_output=True, text=True).stdout
    for path in [w for w in ldd.split() if w.startswith("/")]:
        real = os.path.realpath(path)
        with open(real, "rb") as f:
            layer.file(path, f.read(), 0o755)
    applets = subprocess.run([bb, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:  # hard links, as busybox's image has: a masked /bin/ls is ls alone
        if applet != "busybox":
            layer.hardlink(f"/bin/{applet}", "/bin/busybox")
    for name, script in TOOLS.items():
        layer.file(f"/usr/bin/{name}", script.encode(), 0o755)
    layer.file("/etc/passwd", PASSWD.encode())
    layer.file("/etc/group", GROUP.encode())
    layer.file("/var/www/index.html", b"<html><body>pyrun cri test page</body></html>\n")
    return layer


def _image_specs() -> list[tuple[str, dict, Layer | None]]:
    """(name, image config, extra layer) for every image critest runs."""
    pause = Layer()
    with open(_static("pause", PAUSE_C), "rb") as f:
        pause.file("/pause", f.read(), 0o755)
    nnp = Layer()
    nnp.dir("/usr/local")
    nnp.dir("/usr/local/bin")
    with open(_static("nnp", NNP_C), "rb") as f:
        nnp.file("/usr/local/bin/nnp", f.read(), 0o4755)
    nginx = Layer()
    nginx.dir("/usr/sbin")
    with open(_static("nginx", NGINX_C), "rb") as f:
        nginx.file("/usr/sbin/nginx", f.read(), 0o755)
    # httpd's image logs its command line; the multi-container spec looks for it
    httpd = ["sh", "-c", "echo \"AH00094: Command line: 'httpd -D FOREGROUND'\" >&2; "
             "exec httpd -f -h /var/www -p 80"]
    return [
        (PAUSE_IMAGE, {"Entrypoint": ["/pause"]}, pause),
        (BUSYBOX_IMAGE, {"Cmd": ["sh"]}, None),
        (E2E + "nginx:1.14-2", {"Cmd": ["/usr/sbin/nginx", "80"]}, nginx),
        (E2E + "httpd:2.4.39-4", {"Cmd": httpd}, None),
        (STAGING + "hostnet-nginx-amd64:latest", {"Cmd": ["/usr/sbin/nginx", "12003"]}, nginx),
        (E2E + "nonewprivs:1.3", {"Cmd": ["/usr/local/bin/nnp"]}, nnp),
        (STAGING + "test-image-predefined-group:latest", {"Cmd": ["sh"], "User": "1000"}, None),
    ]


def build_images(out: str) -> list[str]:
    """An OCI image layout archive at ``out`` holding every image, each
    named by its io.containerd.image.name annotation; returns the names."""
    blobs: dict[str, bytes] = {}

    def add(data: bytes, media: str) -> dict:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"mediaType": media, "digest": digest, "size": len(data)}

    base = _base_layer().blob()
    manifests, names = [], []
    for name, config, extra in _image_specs():
        layers = [base] + ([extra.blob()] if extra else [])
        cfg = {"architecture": "amd64", "os": "linux",
               "config": {"Env": [f"PATH={PATH}"], "WorkingDir": "/", **config},
               "rootfs": {"type": "layers", "diff_ids": [diff for _, diff in layers]}}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": add(json.dumps(cfg).encode(), "application/vnd.oci.image.config.v1+json"),
                    "layers": [add(gz, "application/vnd.oci.image.layer.v1.tar+gzip") for gz, _ in layers]}
        desc = add(json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json")
        desc["annotations"] = {"io.containerd.image.name": name,
                               "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}
        manifests.append(desc)
        names.append(name)
    with tarfile.open(out, "w") as tar:
        def put(path: str, data: bytes) -> None:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        put("index.json", json.dumps({"schemaVersion": 2, "manifests": manifests}).encode())
        for digest, data in blobs.items():
            put("blobs/sha256/" + digest.split(":", 1)[1], data)
    return names


# ------------------------------------------------------------- containerd

class CriEnv:
    """A private containerd with the CRI plugin; ``runtimes`` maps each
    handler's name to its BinaryName, the first is the default;
    ``systemd_cgroup``: the shim runs them with ``--systemd-cgroup``
    (``SystemdCgroup = true``, as on a stock Kubernetes node)."""

    def __init__(self, runtimes: dict[str, str], crictl: str, images: str, systemd_cgroup: bool = False):
        self.crictl_bin = crictl
        self.systemd_cgroup = False
        self.slices: set[str] = set()
        self.dir = tempfile.mkdtemp(prefix="pyrun-cri-", dir="/tmp")
        self.containerd: Containerd | None = None
        try:
            cni = json.loads(json.dumps(CNI).replace("{d}", self.dir))
            os.mkdir(os.path.join(self.dir, "cni"))
            with open(os.path.join(self.dir, "cni", "10-pyrun-cri.conflist"), "w") as f:
                json.dump(cni, f)
            handlers = "".join(RUNTIME % {"name": name, "binary": binary, "systemd": str(systemd_cgroup).lower()}
                               for name, binary in runtimes.items())
            config = CONFIG % {"pause": PAUSE_IMAGE, "default": next(iter(runtimes)), "runtimes": handlers,
                               "cni_bin": CNI_BIN}
            self.systemd_cgroup = systemd_cgroup
            self.slices = _kubepods_slices() if systemd_cgroup else set()
            prefix = (*NAMESPACES_SYSTEMD, self.dir) if systemd_cgroup else NAMESPACES
            self.containerd = Containerd(self.dir, config, prefix, ns="k8s.io")
            self.pid = self.containerd.proc.pid
            self.containerd.ok("images", "import", images, timeout=300)
        except BaseException:
            self.close()
            raise

    def enter(self) -> list[str]:
        """nsenter into containerd's mount, network and IPC namespaces."""
        return ["nsenter", "-t", str(self.pid), "-m", "-n", "-i", "--"]

    def crictl(self, *args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([*self.enter(), self.crictl_bin, "--runtime-endpoint",
                               f"unix://{self.containerd.sock}", "--timeout", "30s", *args],
                              capture_output=True, text=True, timeout=timeout, **kw)

    def _ours(self) -> list[int]:
        """What containerd started, all of it by pid: the shims (daemons,
        their parent is init, but they stay in containerd's mount namespace),
        and down the tree from them and from containerd, the containers they
        run (the shim is their subreaper). Taken while the tree is whole."""
        try:
            ns = os.readlink(f"/proc/{self.pid}/ns/mnt")
        except OSError:
            return []
        roots = []
        for name in os.listdir("/proc"):
            if name.isdigit() and int(name) != self.pid:
                try:
                    if os.readlink(f"/proc/{name}/ns/mnt") == ns:
                        roots.append(int(name))
                except OSError:
                    pass
        pids, todo = list(roots), [self.pid, *roots]
        while todo:
            kids = children(todo.pop())
            pids += [k for k in kids if k not in pids]
            todo += kids
        return pids

    @staticmethod
    def _cgroups(pid: int) -> list[str]:
        try:
            with open(f"/proc/{pid}/cgroup") as f:
                lines = [line.rstrip("\n").split(":", 2) for line in f]
        except OSError:
            return []
        out = []
        for _, controllers, path in lines:
            if path.startswith("/k8s.io/"):  # CRI's cgroupfs parent
                name = controllers.replace("name=", "") or "unified"
                out.append(f"/sys/fs/cgroup/{name.split(',')[0]}{path}" if name != "unified"
                           else f"/sys/fs/cgroup/unified{path}")
        return out

    def close(self) -> None:
        """Pods removed, containerd stopped, any process it left killed (by
        pid) and its CRI cgroups removed, the directory unmounted and removed."""
        c = self.containerd
        if c is not None and c.proc.poll() is None:
            try:
                self.crictl("rmp", "-a", "-f", timeout=120)
            except (subprocess.SubprocessError, OSError):
                pass
            left = self._ours()
            cgroups = {g for pid in left for g in self._cgroups(pid)}
            c.stop()
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.3)
            for path in sorted(cgroups, reverse=True):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
        elif c is not None:
            c.stop()
        if self.systemd_cgroup:
            # The pods' slices, which a kubelet stops when it removes a pod
            # (its parents with them); the containers' scopes went with
            # their processes
            made = sorted(_kubepods_slices() - self.slices)
            if made:
                subprocess.run(["systemctl", "stop", *made], capture_output=True, timeout=120)
        subprocess.run(["umount", "-R", "-l", self.dir], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _kubepods_slices() -> set[str]:
    """The slice units named kubepods* that systemd has loaded."""
    p = subprocess.run(["systemctl", "list-units", "--type=slice", "--all", "--plain", "--no-legend",
                        "kubepods*"], capture_output=True, text=True, timeout=60)
    return {line.split()[0] for line in p.stdout.splitlines() if line.strip()}


# The pods' slices, as a kubelet with the systemd driver names them
# (critest --pod-slice-prefix, tools/cri/critest-pod-slice.patch)
POD_SLICE_PREFIX = "kubepods-besteffort"
# Specs that pull from a registry on purpose (no network here)
SKIP = "Image Manager"


def critest(env: CriEnv, critest_bin: str, report: str, focus: str = "", skip: str = SKIP,
            failures: dict[str, str] | None = None, handler: str = "") -> dict[str, str]:
    """Run critest against ``env`` (with the systemd driver, each pod in a
    slice of its own as a kubelet sends it), its pods on ``handler`` (else
    the default): spec text -> passed, failed or skipped, from ginkgo's JSON
    report; its output in ``report``.log; each failed spec's message into
    ``failures``."""
    sock = f"unix://{env.containerd.sock}"
    argv = [*env.enter(), critest_bin, "--runtime-endpoint", sock, "--image-endpoint", sock,
            "--runtime-service-timeout", "30s", "--ginkgo.skip", skip, "--ginkgo.json-report", report,
            "--ginkgo.no-color"]
    if env.systemd_cgroup:
        argv += ["--pod-slice-prefix", POD_SLICE_PREFIX]
    if focus:
        argv += ["--ginkgo.focus", focus]
    if handler:
        argv += ["--runtime-handler", handler]
    with open(report + ".log", "w") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, cwd=env.dir)
    results = {}
    with open(report) as f:
        for suite in json.load(f):
            for spec in suite.get("SpecReports") or []:
                if spec.get("LeafNodeType") != "It":
                    continue
                name = " ".join(spec.get("ContainerHierarchyTexts") or []) + " " + spec.get("LeafNodeText", "")
                results[name.strip()] = spec["State"]
                if failures is not None and spec.get("Failure"):
                    failures[name.strip()] = spec["Failure"].get("Message", "")
    return results


def missing() -> str | None:
    """Why the CRI run cannot happen here, or None."""
    if not os.path.exists(TARBALL) and not os.path.exists(os.path.join(CACHE, "critest")):
        return f"no cri-tools tarball (set CRI_TOOLS_TARBALL; looked at {os.path.normpath(TARBALL)})"
    for tool in ("go", "gcc", "patch", "nsenter", "unshare", "ip"):
        if not shutil.which(tool):
            return f"{tool} is not installed (tools/deps.sh)"
    if not (CONTAINERD and CTR):
        return "containerd is not installed (tools/deps.sh)"
    if not os.path.exists(os.path.join(CNI_BIN, "bridge")):
        return "containernetworking-plugins is not installed (tools/deps.sh)"
    if os.geteuid() != 0:
        return "needs root (containerd with the CRI plugin)"
    return None
