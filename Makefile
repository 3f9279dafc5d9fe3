# pyrun — see README.md. Every target sets up what it needs.
PYTHON ?= /usr/bin/python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PYRUN  := $(VENV)/bin/pyrun
PYTEST_ARGS ?=
VM_PYTEST_ARGS ?=
VM_TIMEOUT ?= 1500
export VM_PYTEST_ARGS VM_TIMEOUT

.PHONY: all deps build bundles run run-hello test test-unit vm-test vm-test-systemd vm-test-systemd-v1 vm-test-criu-engines vm-test-selinux clean

all: build

deps:                 ## Debian packages (apt-get as root, else sudo)
	@sh tools/deps.sh

$(VENV)/.built: pyproject.toml setup.py tools/entry-script.py $(wildcard native/*.c native/*.h pyrun/*.py pyrun/*/*.py)
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	rm -rf build/lib.*  # setuptools' copy of pyrun/: a module removed there must not stay installed
	$(PY) -m pip install -q ".[test]"
	$(PY) tools/entry-script.py $(PYRUN)  # pyrun's command as python -I -S (see there)
	@touch $@

build: deps $(VENV)/.built

bundles: build
	$(PY) bundles/prepare.py

run: bundles          ## the sample: a busybox container, rootless
	$(PYRUN) run -b bundles/busybox sample-$$$$

run-hello: bundles
	$(PYRUN) run -b bundles/hello hello-$$$$

test: bundles         ## every test, rootful and rootless (as root: creates a test user)
	$(PY) -P -m pytest -v -p no:cacheprovider -m "not vm and not systemd and not systemd_v1 and not selinux" $(PYTEST_ARGS) tests

test-unit: build
	$(PY) -P -m pytest -q -p no:cacheprovider tests/test_spec.py

vm-test: bundles      ## the tests marked vm, in a qemu VM with cgroup v2 (tools/vm/vm-test)
	tools/vm/vm-test

vm-test-systemd: bundles cri-tools  ## the tests marked systemd, in the VM booting systemd as PID 1 (tools/vm/vm-test --systemd)
	tools/vm/vm-test --systemd

vm-test-systemd-v1: bundles  ## the tests marked systemd_v1, in the VM booting systemd with cgroup v1 (hybrid)
	tools/vm/vm-test --systemd --cgroup-v1

vm-test-criu-engines: bundles  ## podman's and ctr's checkpoint/restore with pyrun beside runc, in the v2 VM (~6 min under TCG: not in CI)
	VM_PYTEST_ARGS="-m criu_engines $(VM_PYTEST_ARGS)" tools/vm/vm-test

vm-test-selinux: bundles  ## the tests marked selinux, in the VM with SELinux on, Debian's policy permissive
	tools/vm/vm-test --selinux

.PHONY: conformance
conformance: build     ## the OCI's runtime-tools validation suite, as root then rootless (tools/conformance/run)
	@sh tools/deps.sh golang-go busybox-static util-linux
	flock /tmp/pyrun-heavy.lock tools/conformance/run

.PHONY: bench
bench: bundles        ## pyrun beside runc and crun, as root (BENCH_N=20, BENCH_QUICK=1, BENCH_OUT=file)
	@sh tools/deps.sh runc crun tini catatonit time util-linux passwd  # what pyrun is compared with
	$(PY) bench/bench.py

.PHONY: vm-bench
vm-bench: bundles     ## run /hello true, pyrun beside runc and crun, rootful and rootless, and pyrun's --debug steps, in the cgroup v2 VM (few runs: TCG is slow; BENCH_N=5)
	flock /tmp/pyrun-vm.lock tools/vm/vm-test --shell 'BENCH_ONLY=run,steps BENCH_N=$(or $(BENCH_N),5) BENCH_OUT=/tmp/bench-vm.json PYTHONUNBUFFERED=1 .venv/bin/python bench/bench.py'

clean:
	rm -rf $(VENV) build *.egg-info bundles/*/rootfs bundles/*/config.json

.PHONY: test-cri cri-tools vm-test-cri-systemd
test-cri: bundles     ## critest through containerd's CRI plugin, pyrun beside runc (as root; tools/cri/test-cri)
	@sh tools/deps.sh
	flock /tmp/pyrun-heavy.lock $(PY) tools/cri/test-cri

cri-tools: build      ## crictl and critest built once into .cache/cri-tools (Go, on the host: the VM targets use them)
	@sh tools/deps.sh
	$(PY) tools/cri/test-cri --build  # takes /tmp/pyrun-heavy.lock when it builds

vm-test-cri-systemd: bundles cri-tools  ## the whole of critest with SystemdCgroup = true in the systemd VM, pyrun beside runc
	VM_TIMEOUT=$${VM_TIMEOUT:-3600} tools/vm/vm-test --systemd --shell '.venv/bin/python tools/cri/test-cri --systemd'

.PHONY: test-podman
test-podman: bundles  ## podman with pyrun (and runc, the reference) as its runtime, rootful and rootless (as root)
	$(PY) -P -m pytest -v -p no:cacheprovider -rxXs $(PYTEST_ARGS) tests/test_podman.py
