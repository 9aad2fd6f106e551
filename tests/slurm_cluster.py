"""A real SLURM cluster on one machine, for the end-to-end test of the multi-node launch.

Debian's slurm-wlm daemons, unmodified: one `slurmctld` and N `slurmd`, each host in its own
network namespace with its own address and its own hostname (a UTS namespace), so the nodes talk
to each other over TCP as on a real cluster. The controller's namespace holds a bridge; each node
is a veth pair from that bridge. The root namespace is never touched: no interface, route or
address is added there, and the namespaces have no route to anything but each other.

Each host also gets a private mount namespace in which its hosts file (in the work folder) is
bound over /etc/hosts, so node names resolve as on a cluster; /sys stays the machine's (slurmd
reads the cgroup mounts at start). Authentication is munge, with a key made for this cluster.
Nothing is written outside the work folder except the namespaces' entries under /run/netns.

Client commands (sbatch, scontrol, ...) run on the controller host: `cluster.run(...)`.
`stop()` kills every process in the cluster's namespaces (by pid) and deletes the namespaces;
it is safe after a failed or partial start, and `sweep_stale()` does the same for clusters whose
test process died without stopping them.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOOLS = ("slurmctld", "slurmd", "munged", "mungekey", "sbatch", "scontrol", "sinfo", "ip", "nsenter")
SUBNET = "10.213.47"  # a private range, used only inside the namespaces made here
PREFIX = "repro-slurm"  # namespace names: repro-slurm<pid>.<n>-<host>
_instances = itertools.count()


def _env(**extra: str) -> dict[str, str]:
    # the daemons live in /usr/sbin, which a non-login PATH may lack
    return {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin", **extra}


def _sh(*cmd: str, timeout: float = 30) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout


def missing_requirements() -> str | None:
    """Why this machine cannot run the cluster, or None when it can."""
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    absent = [tool for tool in TOOLS if shutil.which(tool, path=_env()["PATH"]) is None]
    if absent:
        return f"not installed: {', '.join(absent)} (apt-get install slurm-wlm munge iproute2)"
    probe = f"{PREFIX}-probe{os.getpid()}"
    try:
        _sh("ip", "netns", "add", probe)
        _sh("ip", "-n", probe, "link", "add", "br0", "type", "bridge")
    except RuntimeError as exc:
        return f"this machine cannot create network namespaces with a bridge: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll `check()` until it returns something truthy; RuntimeError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


@dataclass
class Host:
    name: str  # the hostname inside its UTS namespace; for nodes also the SLURM node name
    address: str
    namespace: str


@dataclass
class SlurmCluster:
    workdir: Path
    nodes: int = 2
    cpus_per_node: int = 1
    daemons: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        tag = f"{PREFIX}{os.getpid()}.{next(_instances)}"
        self.controller = Host("controller", f"{SUBNET}.1", f"{tag}-controller")
        self.hosts = [
            Host(f"node{i}", f"{SUBNET}.{10 + i}", f"{tag}-node{i}") for i in range(1, self.nodes + 1)
        ]
        self.conf = self.workdir / "slurm.conf"
        self.munge_socket = self.workdir / "controller" / "munge.socket"

    @property
    def everyone(self) -> list[Host]:
        return [self.controller, *self.hosts]

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, timeout: float = 60) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.workdir.chmod(0o700)  # munged refuses a key that others could replace
        for host in self.everyone:
            (self.workdir / host.name).mkdir(exist_ok=True)
        self._network()
        self._munge()
        self.conf.write_text(self._config())
        self._daemon(self.controller, "slurmctld", "-D", "-i", "-f", str(self.conf))
        for host in self.hosts:
            self._daemon(host, "slurmd", "-D", "-f", str(self.conf))
        wait_for("every node to be idle", self._all_idle, timeout)

    def stop(self) -> None:
        """Kill everything in the cluster's namespaces and delete them. Never raises."""
        for host in self.hosts:  # jobs first (slurmstepd, training processes), then the daemons
            _end_namespace(host.namespace, keep=[p.pid for p in self.daemons])
        for proc in reversed(self.daemons):
            _end(proc.pid, proc)
        for host in self.everyone:
            _end_namespace(host.namespace)
            subprocess.run(["ip", "netns", "del", host.namespace], capture_output=True)
        self.daemons.clear()

    # -- using it ------------------------------------------------------------------------

    def on(self, host: Host, *cmd: str) -> list[str]:
        """`cmd` as run on `host`: its network namespace, its hostname, its /etc/hosts."""
        hosts_file = self.workdir / host.name / "hosts"
        return [
            "nsenter", f"--net=/run/netns/{host.namespace}", "unshare", "--mount", "--uts",
            "sh", "-c", 'mount --bind "$1" /etc/hosts && hostname "$2" && shift 2 && exec "$@"',
            "sh", str(hosts_file), host.name, *cmd,
        ]  # fmt: skip

    def run(self, *cmd: str, timeout: float = 30) -> str:
        """A client command (sbatch, scontrol, sinfo) on the controller host; its stdout."""
        env = _env(SLURM_CONF=str(self.conf))
        proc = subprocess.run(
            self.on(self.controller, *cmd), capture_output=True, text=True, timeout=timeout, env=env
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def client_bin(self, folder: Path, tools=("sbatch", "squeue", "sacct", "scontrol", "scancel")) -> Path:
        """Wrappers that run the SLURM client commands on the controller host, for a PATH: the
        way a login node's commands reach the cluster. Inside a job (SLURM_JOB_ID set) they run
        the real command on the node, as a job script's `scontrol requeue` would."""
        import shlex

        folder.mkdir(parents=True, exist_ok=True)
        for tool in tools:
            real = shutil.which(tool, path=_env()["PATH"])
            wrapper = folder / tool
            wrapper.write_text(
                "#!/bin/sh\n"
                f'if [ -n "${{SLURM_JOB_ID:-}}" ]; then exec {real} "$@"; fi\n'
                f"export SLURM_CONF={shlex.quote(str(self.conf))}\n"
                f'exec {shlex.join(self.on(self.controller, real))} "$@"\n'
            )
            wrapper.chmod(0o755)
        return folder

    def submit(self, script: Path) -> str:
        """`sbatch SCRIPT` with this process's environment (sbatch's default); the job id."""
        return self.run("sbatch", "--parsable", f"--chdir={script.parent}", str(script)).strip().split(";")[0]

    def wait(self, job: str, timeout: float) -> dict[str, str]:
        """Wait until the job has left the queue; its final record (JobState, ExitCode, NodeList...)."""

        def finished() -> dict[str, str] | None:
            record = self.job(job)
            running = record.get("JobState") in ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING")
            return None if running else record

        return wait_for(f"job {job}", finished, timeout, interval=2)

    def job(self, job: str) -> dict[str, str]:
        line = self.run("scontrol", "show", "job", "--oneliner", job)
        return dict(item.split("=", 1) for item in line.split() if "=" in item)

    def bytes_received(self, host: Host) -> int:
        """What the host's network interface has received since the cluster started."""
        link = json.loads(_sh("ip", "-n", host.namespace, "-j", "-s", "link", "show", "dev", "eth0"))
        return int(link[0]["stats64"]["rx"]["bytes"])

    def logs(self, tail: int = 3000) -> str:
        """The daemons' logs, for a failure message."""
        parts = []
        for log in sorted(self.workdir.glob("*/*.log")):
            parts.append(f"== {log.relative_to(self.workdir)}\n{log.read_text(errors='replace')[-tail:]}")
        return "\n".join(parts)

    # -- setting up ----------------------------------------------------------------------

    def _network(self) -> None:
        hosts = "".join(f"{h.address} {h.name}\n" for h in self.everyone)
        for host in self.everyone:
            _sh("ip", "netns", "add", host.namespace)
            _sh("ip", "-n", host.namespace, "link", "set", "lo", "up")
            (self.workdir / host.name / "hosts").write_text(f"127.0.0.1 localhost\n{hosts}")
        ctl = self.controller.namespace
        _sh("ip", "-n", ctl, "link", "add", "br0", "type", "bridge")
        _sh("ip", "-n", ctl, "addr", "add", f"{self.controller.address}/24", "dev", "br0")
        _sh("ip", "-n", ctl, "link", "set", "br0", "up")
        for i, host in enumerate(self.hosts, start=1):
            port = f"veth{i}"  # made in the controller's namespace; its peer goes straight to the node's
            peer = ("peer", "name", "eth0", "netns", host.namespace)
            _sh("ip", "-n", ctl, "link", "add", port, "type", "veth", *peer)
            _sh("ip", "-n", ctl, "link", "set", port, "master", "br0", "up")
            _sh("ip", "-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", "eth0")
            _sh("ip", "-n", host.namespace, "link", "set", "eth0", "up")

    def _munge(self) -> None:
        folder = self.munge_socket.parent
        key = folder / "munge.key"
        _sh("mungekey", "--create", f"--keyfile={key}", "--force")
        key.chmod(0o400)
        self._daemon(
            self.controller, "munged", "--foreground", "--force", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
            f"--seed-file={folder / 'munged.seed'}",
        )  # fmt: skip
        wait_for("munged's socket", self.munge_socket.exists, 15, interval=0.2)

    def _config(self) -> str:
        w, ctl = self.workdir, self.workdir / "controller"
        numbers = [h.name.removeprefix("node") for h in self.hosts]
        lines = [
            "ClusterName=repro-test",
            f"SlurmctldHost={self.controller.name}({self.controller.address})",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={ctl / 'state'}",
            f"SlurmctldPidFile={ctl / 'slurmctld.pid'}",
            f"SlurmctldLogFile={ctl / 'slurmctld.log'}",
            # every slurmd has its own hostname, so %n keeps their files apart
            f"SlurmdSpoolDir={w}/%n/spool",
            f"SlurmdPidFile={w}/%n/slurmd.pid",
            f"SlurmdLogFile={w}/%n/slurmd.log",
            "SlurmdParameters=config_overrides",  # the nodes share this machine's cores
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            "MinJobAge=3600",  # keep finished jobs visible to `scontrol show job`
            "InactiveLimit=0",
            "KillWait=5",
        ]
        lines += [
            f"NodeName={h.name} NodeAddr={h.address} CPUs={self.cpus_per_node} RealMemory=2000 State=UNKNOWN"
            for h in self.hosts
        ]
        lines.append(f"PartitionName=test Nodes=node[{numbers[0]}-{numbers[-1]}] Default=YES State=UP")
        return "\n".join(lines) + "\n"

    def _daemon(self, host: Host, *cmd: str) -> None:
        """Start a daemon on `host`. Every wrapper execs, so Popen's pid is the daemon's."""
        with open(self.workdir / host.name / f"{cmd[0]}.log", "a") as out:
            proc = subprocess.Popen(
                self.on(host, *cmd), stdout=out, stderr=subprocess.STDOUT, env=_env(SLURM_CONF=str(self.conf))
            )
        self.daemons.append(proc)

    def _all_idle(self) -> bool:
        for proc in self.daemons:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[-4:]} exited with code {proc.returncode}:\n{self.logs()}")
        try:
            states = self.run("sinfo", "--noheader", "--Node", "--format=%N %t", timeout=10).splitlines()
        except (RuntimeError, subprocess.TimeoutExpired):
            return False  # slurmctld not answering yet
        idle = {line.split()[0] for line in states if line.split()[-1:] == ["idle"]}
        return idle == {h.name for h in self.hosts}


def sweep_stale() -> list[str]:
    """Remove the namespaces (and their processes) of clusters whose test process is gone."""
    swept = []
    for name in _sh("ip", "netns", "list").split():
        match = re.fullmatch(rf"{PREFIX}(\d+)\.\d+-\w+", name)
        if match and not Path(f"/proc/{match[1]}").exists():
            _end_namespace(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            swept.append(name)
    return swept


def _end_namespace(namespace: str, keep: list[int] | tuple[int, ...] = ()) -> None:
    pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True).stdout.split()
    for pid in pids:
        if int(pid) not in keep:
            _end(int(pid))


def _end(pid: int, proc: subprocess.Popen | None = None, grace: float = 10) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds: one process, by its id."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait_for(f"process {pid} to end", lambda: not _alive(pid, proc), grace, interval=0.1)
    except RuntimeError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
    if proc is not None:
        proc.wait(timeout=10)


def _alive(pid: int, proc: subprocess.Popen | None) -> bool:
    if proc is not None:
        return proc.poll() is None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has ended; its parent reaps it
