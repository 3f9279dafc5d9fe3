"""pyrun's command line: runc's commands and flags, over ``pyrun.container.create`` and ``pyrun.container.lifecycle``.

Each command imports what it needs inside its body: ``pyrun state`` should
not pay for the modules that build a container. Every error is a
:class:`PyrunError` and becomes one line on stderr (and in ``--log``) and
exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import sys

import click

from pyrun.errors import PyrunError, errno_text
from pyrun.log import log


class Ctx:
    def __init__(self, root: str | None, ignore_cgroup_limits: bool = False, systemd_cgroup: bool = False):
        self._root = root
        self.ignore_cgroup_limits = ignore_cgroup_limits
        self.systemd_cgroup = systemd_cgroup

    @property
    def root(self) -> str:
        if self._root is None:
            from pyrun.container.state import default_root

            self._root = default_root()
        from pyrun.container.state import check_root

        check_root(self._root)  # "--root X: not a directory", for every command
        return self._root


def _print_version(ctx, param, value):
    if value and not ctx.resilient_parsing:
        from pyrun.commands.version import text

        click.echo(text(), nl=False)
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(), default=None,
              help="state directory (default /run/pyrun, or $XDG_RUNTIME_DIR/pyrun rootless)")
@click.option("--log", "log_path", type=click.Path(), default=None, help="log file (default stderr)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text")
@click.option("--debug", is_flag=True, help="log each construction step and its duration")
@click.option("--systemd-cgroup", is_flag=True,
              help="the container's cgroup is a transient systemd scope (linux.cgroupsPath slice:prefix:name)")
@click.option("--rootless", default="auto", hidden=True, help="accepted for runc compatibility")
@click.option("--ignore-cgroup-limits", is_flag=True,
              help="where no cgroup v2 can serve linux.resources, warn and run without the limits "
                   "(for engines that always ask for some, e.g. podman's pids limit)")
@click.option("--version", "-v", is_flag=True, expose_value=False, is_eager=True,
              callback=_print_version, help="print the version")
@click.pass_context
def cli(ctx, root, log_path, log_format, debug, systemd_cgroup, rootless, ignore_cgroup_limits):
    """pyrun: a rootless, runc-compatible OCI container runtime."""
    try:
        log.configure(log_path, log_format, debug)
    except OSError as e:
        raise PyrunError(f"--log {log_path}: {errno_text(e)}") from None
    ctx.obj = Ctx(os.path.abspath(root) if root else None, ignore_cgroup_limits, systemd_cgroup)


def _create_options(f):
    f = click.option("--bundle", "-b", default=".", type=click.Path(), help="path to the bundle")(f)
    f = click.option("--pid-file", type=click.Path(), default=None)(f)
    f = click.option("--no-pivot", is_flag=True, help="use MS_MOVE+chroot instead of pivot_root")(f)
    f = click.option("--no-new-keyring", is_flag=True)(f)
    f = click.option("--preserve-fds", type=int, default=0)(f)
    f = click.option("--console-socket", type=click.Path(), default=None)(f)
    f = click.option("--pidfd-socket", type=click.Path(), default=None,
                     help="AF_UNIX socket to send a pidfd of the container's process to")(f)
    f = click.option("--rootfs-mode", type=click.Choice(["overlay", "direct"]), default=None,
                     help="overlay (default: writes never reach the bundle) or direct (as runc)")(f)
    f = click.option("--init/--no-init", "init", default=None,
                     help="run pyrun's PID 1 init in front of the process (default: yes)")(f)
    f = click.option("--network", default=None,
                     type=click.Choice(["none", "host", "bridge", "pasta", "slirp4netns", "slirp"]),
                     help="network mode (sets annotation org.pyrun.network)")(f)
    f = click.option("--publish", "-p", multiple=True,
                     help="[HOST_IP:]HOST_PORT:CONTAINER_PORT[/tcp|udp] (sets org.pyrun.ports)")(f)
    f = click.option("--layers-root", type=click.Path(), default=None,
                     help="where the overlay's writable layer goes (default /var/lib/pyrun, rootless "
                          "$XDG_DATA_HOME/pyrun; annotation org.pyrun.layers)")(f)
    return f


def _options(obj, pid_file, no_pivot, no_new_keyring, preserve_fds, console_socket,
             rootfs_mode, init, network, publish, layers_root=None, pidfd_socket=None, keep=False):
    from pyrun.container.planning import Options

    if preserve_fds < 0:
        raise PyrunError("--preserve-fds must not be negative")
    return Options(pid_file=pid_file, no_pivot=no_pivot, no_new_keyring=no_new_keyring,
                   preserve_fds=preserve_fds, rootfs_mode=rootfs_mode, init=init,
                   console_socket=os.path.abspath(console_socket) if console_socket else None,
                   ignore_cgroup_limits=obj.ignore_cgroup_limits, systemd_cgroup=obj.systemd_cgroup, network=network,
                   publish=",".join(publish) if publish else None,
                   pidfd_socket=os.path.abspath(pidfd_socket) if pidfd_socket else None, keep=keep,
                   layers_root=os.path.abspath(layers_root) if layers_root else None)


@cli.command()
@click.argument("container_id")
@_create_options
@click.pass_obj
def create(obj, container_id, bundle, **kw):
    """Create a container; its process waits for `pyrun start`."""
    from pyrun.container.create import create as create_container

    create_container(obj.root, container_id, bundle, _options(obj, **kw))


@cli.command()
@click.argument("container_id")
@click.pass_obj
def start(obj, container_id):
    """Start the process of a created container."""
    from pyrun.container import lifecycle

    lifecycle.start(obj.root, container_id)


@cli.command()
@click.argument("container_id")
@_create_options
@click.option("--detach", "-d", is_flag=True, help="do not wait for the container")
@click.option("--keep", is_flag=True, help="do not delete the container after it exits")
@click.pass_obj
def run(obj, container_id, bundle, detach, **kw):
    """Create and start a container; in the foreground, exit with its status."""
    from pyrun.container import lifecycle

    code = lifecycle.run(obj.root, container_id, bundle, _options(obj, **kw), detach=detach)
    sys.exit(code)


@cli.command(name="exec", context_settings={"allow_interspersed_args": False})
@click.argument("container_id")
@click.argument("command", nargs=-1)
@click.option("--process", "-p", "process_file", type=click.Path(), default=None,
              help="a process.json (config.md's process object) instead of COMMAND")
@click.option("--env", "-e", multiple=True, help="KEY=VALUE, added to the container's env")
@click.option("--cwd", default=None, help="working directory in the container")
@click.option("--user", "-u", default=None, help="uid[:gid]")
@click.option("--additional-gids", "-g", type=int, multiple=True)
@click.option("--cap", "-c", multiple=True, help="add a capability")
@click.option("--tty", "-t", is_flag=True)
@click.option("--detach", "-d", is_flag=True, help="do not wait for the process")
@click.option("--pid-file", type=click.Path(), default=None)
@click.option("--console-socket", type=click.Path(), default=None)
@click.option("--preserve-fds", type=int, default=0)
@click.option("--no-new-privs", is_flag=True)
@click.option("--process-label", default=None)
@click.option("--apparmor", default=None)
@click.option("--ignore-paused", is_flag=True, help="exec even if the container is paused (the process starts frozen)")
@click.option("--pidfd-socket", type=click.Path(), default=None,
              help="AF_UNIX socket to send a pidfd of the process to")
@click.option("--cgroup", multiple=True,
              help="[CONTROLLER[,CONTROLLER]:]PATH: start in an existing sub-cgroup of the container's (repeatable)")
@click.pass_obj
def exec_cmd(obj, container_id, command, process_file, env, cwd, user, additional_gids, cap, tty,
             detach, pid_file, console_socket, preserve_fds, no_new_privs, process_label, apparmor,
             ignore_paused, pidfd_socket, cgroup):
    """Run COMMAND (or --process) in a running container."""
    from pyrun.container.enter import exec_from_flags

    sys.exit(exec_from_flags(obj.root, container_id, list(command), process_file, list(env), cwd, user,
                             list(additional_gids), list(cap), tty, detach, pid_file, console_socket,
                             preserve_fds, no_new_privs, process_label, apparmor, pidfd_socket, list(cgroup),
                             ignore_paused))


@cli.command()
@click.argument("container_id")
@click.pass_obj
def state(obj, container_id):
    """Print the OCI state of a container as JSON (runc's bytes: indented, no newline at the end)."""
    from pyrun.container.state import write_state

    sys.stdout.flush()
    write_state(obj.root, container_id, sys.stdout.buffer)


@cli.command()
@click.argument("container_id")
@click.argument("signal", default="SIGTERM")
@click.option("--all", "-a", "all_processes", is_flag=True, help="signal every process of the container")
@click.pass_obj
def kill(obj, container_id, signal, all_processes):
    """Send a signal (name or number, default SIGTERM) to the container."""
    from pyrun.container import lifecycle

    lifecycle.kill(obj.root, container_id, lifecycle.parse_signal(signal), all_processes)


@cli.command()
@click.argument("container_id")
@click.option("--force", "-f", is_flag=True, help="kill the container if it is running")
@click.pass_obj
def delete(obj, container_id, force):
    """Delete a container and everything pyrun made for it."""
    from pyrun.container import lifecycle

    lifecycle.delete(obj.root, container_id, force)


@cli.command()
@click.argument("container_id")
@click.pass_obj
def pause(obj, container_id):
    """Freeze every process of the container (cgroup.freeze)."""
    from pyrun.container import lifecycle

    lifecycle.pause(obj.root, container_id, True)


@cli.command()
@click.argument("container_id")
@click.pass_obj
def resume(obj, container_id):
    """Thaw a paused container."""
    from pyrun.container import lifecycle

    lifecycle.pause(obj.root, container_id, False)


@cli.command()
@click.argument("container_id")
@click.option("--resources", "-r", "resources_file", default=None,
              help="a JSON file of linux.resources ('-' for stdin)")
@click.option("--memory", default=None)
@click.option("--memory-swap", default=None)
@click.option("--memory-reservation", default=None)
@click.option("--kernel-memory", default=None, hidden=True)
@click.option("--kernel-memory-tcp", default=None, hidden=True)
@click.option("--cpu-quota", type=int, default=None)
@click.option("--cpu-period", type=int, default=None)
@click.option("--cpu-share", type=int, default=None)
@click.option("--cpu-rt-period", type=int, default=None)
@click.option("--cpu-rt-runtime", type=int, default=None)
@click.option("--cpuset-cpus", default=None)
@click.option("--cpuset-mems", default=None)
@click.option("--pids-limit", type=int, default=None)
@click.option("--blkio-weight", type=int, default=None)
@click.pass_obj
def update(obj, container_id, resources_file, memory, memory_swap, memory_reservation, kernel_memory,
           kernel_memory_tcp, cpu_quota, cpu_period, cpu_share, cpu_rt_period, cpu_rt_runtime,
           cpuset_cpus, cpuset_mems, pids_limit, blkio_weight):
    """Change the cgroup limits of a running container."""
    from pyrun.container import lifecycle
    from pyrun.cgroups import update_resources

    values = {"--memory": memory, "--memory-swap": memory_swap, "--memory-reservation": memory_reservation,
              "--kernel-memory": kernel_memory, "--kernel-memory-tcp": kernel_memory_tcp,
              "--cpu-quota": cpu_quota, "--cpu-period": cpu_period, "--cpu-share": cpu_share,
              "--cpu-rt-period": cpu_rt_period, "--cpu-rt-runtime": cpu_rt_runtime,
              "--cpuset-cpus": cpuset_cpus, "--cpuset-mems": cpuset_mems,
              "--pids-limit": pids_limit, "--blkio-weight": blkio_weight}
    resources = update_resources(resources_file, values)
    lifecycle.update(obj.root, container_id, resources)


@cli.command()
@click.argument("container_id")
@click.option("--stats", "once", is_flag=True, help="print the statistics once and exit")
@click.option("--interval", default="5s", help="how often to print statistics (e.g. 1s, 500ms)")
@click.pass_obj
def events(obj, container_id, once, interval):
    """Print statistics and OOM events as JSON lines, as runc does."""
    import time

    from pyrun import cgroups
    from pyrun.container import lifecycle
    from pyrun.jsonio import go as dumps  # runc's bytes: {"type":"oom","id":"..."}

    period = _duration(interval)
    cg = lifecycle.live_cgroup(obj.root, container_id, "events")
    ooms = cgroups.oom_kills(cg)
    notify = None if once else cg.oom_fd()  # cgroup v1: an eventfd the kernel signals at each OOM
    while True:
        click.echo(dumps({"type": "stats", "id": container_id, "data": cgroups.stats(cg)}))
        if once:
            return
        deadline = time.monotonic() + period
        while notify is not None and time.monotonic() < deadline:
            gone = not cg.exists() or lifecycle.state(obj.root, container_id, annotations=False)["status"] == "stopped"
            if _ready(notify, 0 if gone else min(0.1, period)):
                os.read(notify, 8)
                if cg.exists():  # the kernel signals it at rmdir too: not an OOM then (as runc)
                    click.echo(dumps({"type": "oom", "id": container_id}))
            if gone:
                return
        while notify is None and time.monotonic() < deadline:
            if not cg.exists() or lifecycle.state(obj.root, container_id, annotations=False)["status"] == "stopped":
                now = cgroups.oom_kills(cg)
                if now > ooms:
                    click.echo(dumps({"type": "oom", "id": container_id}))
                return
            now = cgroups.oom_kills(cg)
            if now > ooms:
                ooms = now
                click.echo(dumps({"type": "oom", "id": container_id}))
            time.sleep(min(0.1, period))


def _ready(fd: int, timeout: float) -> bool:
    import select

    return bool(select.select([fd], [], [], timeout)[0])


def _duration(text: str) -> float:
    import re

    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text.strip())
    if not m:
        raise PyrunError(f"--interval {text!r}: expected a duration such as 5s or 500ms")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("container_id")
@click.argument("ps_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_obj
def ps(obj, container_id, ps_args, fmt):
    """The container's processes: ps(1) run with PS_ARGS (default -ef), its
    lines kept to them (table), or their host pids (json), as runc."""
    from pyrun.container import lifecycle
    from pyrun.commands import ps as ps_table

    pids = lifecycle.processes(obj.root, container_id)
    if fmt == "json":
        click.echo(ps_table.json_line(pids))
        return
    for line in ps_table.table(pids, list(ps_args)):
        click.echo(line)


@cli.command(name="list")
@click.option("--format", "-f", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--quiet", "-q", is_flag=True, help="print only the ids")
@click.pass_obj
def list_cmd(obj, fmt, quiet):
    """List the containers under --root."""
    from pyrun.container import lifecycle

    states = lifecycle.list_states(obj.root)
    if quiet:
        for s in states:
            click.echo(s["id"])
    elif fmt == "json":
        from pyrun.jsonio import go

        click.echo(go(states or None))  # runc's Encoder: compact; an empty list is null
    else:
        for line in lifecycle.table(states):
            click.echo(line)


def _criu_options(f):
    """The flags checkpoint and restore share (runc's), for pyrun.container.checkpoint."""
    f = click.option("--image-path", default=None, type=click.Path(),
                     help="where the images are (default: ./checkpoint)")(f)
    f = click.option("--work-path", default=None, type=click.Path(),
                     help="where CRIU's log goes (default: --image-path)")(f)
    f = click.option("--tcp-established", is_flag=True, help="established TCP connections too")(f)
    f = click.option("--ext-unix-sk", is_flag=True, help="external unix sockets")(f)
    f = click.option("--shell-job", is_flag=True, help="a shell job (its terminal is the caller's)")(f)
    f = click.option("--file-locks", is_flag=True, help="file locks too")(f)
    f = click.option("--manage-cgroups-mode", default=None, type=click.Choice(["soft", "full", "strict", "ignore"]),
                     help="how CRIU treats cgroups (default soft)")(f)
    f = click.option("--empty-ns", multiple=True, type=click.Choice(["network"]),
                     help="a namespace to restore empty (repeatable)")(f)
    f = click.option("--auto-dedup", is_flag=True, help="free what a later dump makes redundant")(f)
    f = click.option("--lazy-pages", is_flag=True, help="(refused: not supported by pyrun)")(f)
    return f


def _refuse_lazy(lazy_pages, page_server=None, status_fd=None) -> None:
    for flag, value in (("--lazy-pages", lazy_pages), ("--page-server", page_server), ("--status-fd", status_fd)):
        if value:
            raise PyrunError(f"{flag}: not supported by pyrun (it needs CRIU's page server or lazy-pages "
                             "daemon beside the dump, which pyrun does not run)")


@cli.command()
@click.argument("container_id")
@_criu_options
@click.option("--parent-path", default=None, help="a pre-dump's images, relative to --image-path")
@click.option("--leave-running", is_flag=True, help="the container runs on after the checkpoint")
@click.option("--pre-dump", is_flag=True, help="dump memory only, for a later dump with --parent-path")
@click.option("--page-server", default=None, help="(refused: not supported by pyrun)")
@click.option("--status-fd", default=None, help="(refused: not supported by pyrun)")
@click.pass_obj
def checkpoint(obj, container_id, image_path, lazy_pages, page_server, status_fd, **kw):
    """Checkpoint a running container with CRIU (root only)."""
    from pyrun.container import checkpoint as criu

    _refuse_lazy(lazy_pages, page_server, status_fd)
    criu.checkpoint(obj.root, container_id, image_path or "checkpoint", **kw)


@cli.command()
@click.argument("container_id")
@_criu_options
@click.option("--bundle", "-b", default=".", type=click.Path(), help="path to the bundle")
@click.option("--detach", "-d", is_flag=True, help="do not wait for the container")
@click.option("--pid-file", type=click.Path(), default=None)
@click.option("--console-socket", type=click.Path(), default=None)
# "-no-subreaper": containerd's shim (go-runc) writes it with one dash, which runc's flag parser accepts
@click.option("--no-subreaper", "-no-subreaper", is_flag=True, help="accepted for runc compatibility")
@click.option("--no-pivot", is_flag=True, help="accepted for runc compatibility")
@click.option("--lsm-profile", default=None, help="TYPE:NAME, the LSM profile to restore the processes with")
@click.option("--lsm-mount-context", default=None, help="the LSM mount context to restore the mounts with")
@click.pass_obj
def restore(obj, container_id, image_path, bundle, lazy_pages, **kw):
    """Restore a container from a checkpoint with CRIU (root only)."""
    from pyrun.container import checkpoint as criu

    _refuse_lazy(lazy_pages)
    sys.exit(criu.restore(obj.root, container_id, bundle, image_path or "checkpoint",
                          ignore_cgroup_limits=obj.ignore_cgroup_limits, systemd_cgroup=obj.systemd_cgroup, **kw))


@cli.command()
@click.option("--rootless", is_flag=True, help="a config for an unprivileged user")
@click.option("--bundle", "-b", default=".", type=click.Path(), help="where to write config.json")
def spec(rootless, bundle):
    """Write a default config.json, like `runc spec`."""
    from pyrun.config.spec import default_spec

    from pyrun.jsonio import go

    path = os.path.join(bundle, "config.json")
    if os.path.exists(path):
        raise PyrunError(f"{path} already exists: remove it first")
    try:
        with open(path, "w") as f:
            f.write(go(default_spec(rootless=rootless), indent="\t"))  # runc's: tabs, no newline at the end
    except OSError as e:
        raise PyrunError(f"write {path}: {errno_text(e)}") from None


@cli.command()
def features():
    """Print what this pyrun supports, as JSON (runc's format)."""
    from pyrun.commands.features import features as get
    from pyrun.jsonio import go

    click.echo(go(get(), indent="    "))  # runc's Encoder with SetIndent("", "    ")


def bad_value(e: click.BadParameter) -> str:
    """``invalid value for --network: 'bogus' is not one of 'none', ...``:
    click's own sentence (the value, and the accepted ones for a choice),
    on one line, without the usage text."""
    param = e.param
    if param is None:
        return e.format_message()
    names = getattr(param, "opts", None) or [param.human_readable_name]
    flag = max(names, key=len)
    message = e.message[:1].lower() + e.message[1:]
    return f"invalid value for {flag}: {message}"


def main() -> None:
    try:
        cli.main(standalone_mode=False, prog_name="pyrun")
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.BadParameter as e:
        if isinstance(e, click.MissingParameter):
            e.show()
            sys.exit(2)
        log.error(bad_value(e))  # one line naming the flag and what it accepts, exit 1
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else 1)
    except click.exceptions.Abort:
        sys.exit(130)
    except PyrunError as e:
        log.error(str(e))
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug: still one line, unless --debug
        if log.debug:
            import traceback

            traceback.print_exc()
        log.error(f"internal error: {type(e).__name__}: {e}")
        sys.exit(1)
