"""What kind of filesystem holds a path: node-local (tmpfs, /tmp) or shared over the network.

SLURM jobs need the results on a filesystem every node sees; the judgment cache's SQLite WAL
mode needs one that is not shared over the network (its index lives in shared memory).
"""

from __future__ import annotations

import os
from pathlib import Path

# Folders that are private to one machine: compute nodes never see what is written there.
NODE_LOCAL_DIRS = ("/tmp", "/var/tmp", "/dev/shm", "/run")
NODE_LOCAL_TYPES = ("tmpfs", "ramfs")
# Filesystems shared between machines (no shared memory across them).
NETWORK_TYPES = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph",
                 "fuse.sshfs", "fuse.glusterfs", "glusterfs", "9p", "afs", "fuse.ceph-fuse")  # fmt: skip


def filesystem_type(path: Path) -> str | None:
    """The type of the filesystem holding `path` (its nearest existing folder), from
    /proc/mounts; None when unknown (no /proc)."""
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    target = str(Path(path).resolve())
    while not os.path.exists(target) and target != "/":
        target = os.path.dirname(target)
    best, kind = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and len(mount) >= len(best):
            best, kind = mount, parts[2]
    return kind


# Kernel filesystems: no file can be created in them, whatever the permission bits say.
PSEUDO_TYPES = ("proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "securityfs",
                "tracefs", "pstore", "bpf", "configfs", "fusectl", "mqueue", "binfmt_misc")  # fmt: skip


def unwritable_reason(path: Path) -> str | None:
    """Why no file can be created in folder `path` though its permission bits allow it (a kernel
    filesystem such as /proc, a read-only mount), or None."""
    kind = filesystem_type(path)
    if kind in PSEUDO_TYPES:
        return f"{kind} is a kernel filesystem"
    try:
        if os.statvfs(path).f_flag & os.ST_RDONLY:
            return "it is mounted read-only"
    except OSError:
        return None
    return None


def is_network(path: Path) -> bool:
    return filesystem_type(path) in NETWORK_TYPES


def node_local_reason(path: Path) -> str | None:
    """Why `path` is certainly private to this machine, or None when it may be shared."""
    resolved = Path(path).resolve()
    for local in NODE_LOCAL_DIRS:
        if resolved == Path(local) or resolved.is_relative_to(local):
            return f"it is under {local}, which each node has for itself"
    kind = filesystem_type(resolved)
    if kind in NODE_LOCAL_TYPES:
        return f"it is on a {kind} filesystem, private to this machine"
    return None
