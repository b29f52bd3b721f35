"""Build the nested test host: Debian's kernel plus a tiny busybox initramfs.

The image is cached in nested-host/ of tabique's cache ($TABIQUE_CACHE, else
$XDG_CACHE_HOME/tabique, else ~/.cache/tabique) and rebuilt only when Debian's current kernel
package, the /init script or this builder's format changes.  Everything comes
from Debian's archive through apt-get download + dpkg-deb -x; nothing is
installed on the machine.
"""

import fcntl
import gzip
import hashlib
import json
import os
import re
import stat
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
INIT_SCRIPT = os.path.join(HERE, "host-init.sh")

# Bump when the layout of the image changes in a way the stamp cannot see.
FORMAT = 1

# What the host must load.  Dependencies are resolved from each module's
# .modinfo, so this yields irqbypass, kvm, ccp, kvm-amd as PLATFORM.md asks.
WANTED_MODULES = ["kvm-amd", "virtio_pci", "9pnet_virtio", "9p"]


def tabique_cache():
    """tabique's cache folder, chosen as `tabique prepare-guest` does."""
    if os.environ.get("TABIQUE_CACHE"):
        return os.environ["TABIQUE_CACHE"]
    if os.environ.get("XDG_CACHE_HOME"):
        return os.path.join(os.environ["XDG_CACHE_HOME"], "tabique")
    return os.path.join(os.path.expanduser("~"), ".cache", "tabique")


def cache_dir():
    """The nested host's cache folder (not created)."""
    return os.path.join(tabique_cache(), "nested-host")


class BuildError(Exception):
    pass


def _log(msg):
    print(f"build-host: {msg}", file=sys.stderr, flush=True)


def _run(argv, **kw):
    try:
        return subprocess.run(argv, check=True, capture_output=True,
                              text=True, **kw).stdout
    except FileNotFoundError:
        raise BuildError(f"{argv[0]} not found: this needs a Debian host")
    except subprocess.CalledProcessError as e:
        raise BuildError(f"{' '.join(argv)} failed: {e.stderr.strip()}")


# --- Debian packages -------------------------------------------------------

def kernel_package():
    """Name of the package linux-image-amd64 currently points at."""
    out = _run(["apt-cache", "depends", "linux-image-amd64"])
    m = re.search(r"Depends:\s*(linux-image-[0-9][^\s]*-amd64)", out)
    if not m:
        raise BuildError("apt-cache depends linux-image-amd64 names no "
                         "kernel package; run apt-get update")
    return m.group(1)


def download(pkg, debdir):
    """Path of pkg's .deb in debdir, downloading it when missing."""
    os.makedirs(debdir, exist_ok=True)
    found = _find_deb(pkg, debdir)
    if found:
        return found
    _log(f"downloading {pkg}")
    # As root, apt warns that it downloads unsandboxed (_apt cannot write
    # here); harmless, and better than a world-writable cache folder.
    _run(["apt-get", "download", pkg], cwd=debdir)
    found = _find_deb(pkg, debdir)
    if not found:
        raise BuildError(f"apt-get download {pkg} produced no .deb")
    return found


def _find_deb(pkg, debdir):
    for name in sorted(os.listdir(debdir)):
        if name.startswith(pkg + "_") and name.endswith(".deb"):
            return os.path.join(debdir, name)
    return None


def unpack(deb, dest):
    _run(["dpkg-deb", "-x", deb, dest])


# --- kernel modules ----------------------------------------------------------

def modinfo(path):
    """The key=value pairs of a module's .modinfo ELF section."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        raise BuildError(f"{path}: not a 64-bit ELF module")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3a)

    def section(i):
        off = shoff + i * shentsize
        name, _, _, _, sh_off, size = struct.unpack_from("<IIQQQQ", data, off)
        return name, sh_off, size

    _, stroff, _ = section(shstrndx)
    for i in range(shnum):
        name, off, size = section(i)
        end = data.index(b"\0", stroff + name)
        if data[stroff + name:end] == b".modinfo":
            pairs = data[off:off + size].split(b"\0")
            return [p.decode(errors="replace") for p in pairs if b"=" in p]
    return []


def module_index(moddir):
    """Map canonical module name (dashes as underscores) to its .ko path."""
    index = {}
    for root, _, files in os.walk(os.path.join(moddir, "kernel")):
        for f in files:
            if f.endswith(".ko"):
                index[f[:-3].replace("-", "_")] = os.path.join(root, f)
    return index


def load_order(wanted, index):
    """Modules to insmod, dependencies first (depth-first post-order)."""
    order, seen = [], set()

    def visit(name):
        name = name.replace("-", "_")
        if name in seen:
            return
        seen.add(name)
        if name not in index:
            raise BuildError(f"module {name} not found in the kernel package")
        for kv in modinfo(index[name]):
            key, _, value = kv.partition("=")
            if key == "depends":
                for dep in filter(None, value.split(",")):
                    visit(dep)
        order.append(name)

    for w in wanted:
        visit(w)
    return order


# --- initramfs (cpio "newc") -----------------------------------------------

class Cpio:
    """Minimal writer for the newc format the kernel unpacks."""

    def __init__(self):
        self.out = bytearray()
        self.ino = 1

    def _entry(self, name, mode, data=b"", rdev=(0, 0)):
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0,
                  rdev[0], rdev[1], len(name) + 1, 0]
        self.ino += 1
        self.out += b"070701" + b"".join(b"%08x" % v for v in fields)
        self.out += name.encode() + b"\0"
        self._pad()
        self.out += data
        self._pad()

    def _pad(self):
        self.out += b"\0" * (-len(self.out) % 4)

    def dir(self, name):
        self._entry(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o644):
        self._entry(name, stat.S_IFREG | mode, data)

    def symlink(self, name, target):
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor):
        self._entry(name, stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self):
        self._entry("TRAILER!!!", 0)
        return bytes(self.out)


def make_initramfs(busybox, modules):
    """gzip'd cpio: busybox, /init and the modules (list of (name, path))."""
    c = Cpio()
    for d in ["bin", "dev", "proc", "sys", "mnt", "mnt/root", "lib",
              "lib/modules", "tmp"]:
        c.dir(d)
    # The kernel opens /dev/console for init's stdio before devtmpfs exists.
    c.chardev("dev/console", 5, 1)
    with open(busybox, "rb") as f:
        c.file("bin/busybox", f.read(), 0o755)
    c.symlink("bin/sh", "busybox")
    with open(INIT_SCRIPT, "rb") as f:
        c.file("init", f.read(), 0o755)
    for name, path in modules:
        with open(path, "rb") as f:
            c.file(f"lib/modules/{name}.ko", f.read())
    order = "".join(f"{name}\n" for name, _ in modules)
    c.file("lib/modules/load-order", order.encode())
    return gzip.compress(c.finish(), compresslevel=6)


# --- the cached image -------------------------------------------------------

def _stamp_for(kpkg):
    with open(INIT_SCRIPT, "rb") as f:
        init_hash = hashlib.sha256(f.read()).hexdigest()
    return {"format": FORMAT, "kernel_package": kpkg, "init_sha256": init_hash}


def _read_stamp(d):
    try:
        with open(os.path.join(d, "stamp.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _current_kernel_package(old):
    """Debian's current kernel package; falls back to the cached one when
    apt is unusable (offline machine with a valid cache)."""
    try:
        return kernel_package()
    except BuildError:
        if old:
            return old["kernel_package"]
        raise


def _build(d, kpkg):
    debdir = os.path.join(d, "debs")
    kdeb = download(kpkg, debdir)
    bdeb = download("busybox-static", debdir)
    _drop_stale_debs(debdir, keep={kdeb, bdeb})
    with tempfile.TemporaryDirectory(prefix="tabique-host-") as tmp:
        _log(f"unpacking {os.path.basename(kdeb)}")
        unpack(kdeb, tmp)
        unpack(bdeb, tmp)
        kver = kpkg[len("linux-image-"):]
        moddir = os.path.join(tmp, "lib", "modules", kver)
        index = module_index(moddir)
        order = load_order(WANTED_MODULES, index)
        _log("modules: " + " ".join(order))
        image = make_initramfs(os.path.join(tmp, "bin", "busybox"),
                               [(m, index[m]) for m in order])
        _write_atomic(os.path.join(d, "host.cpio.gz"), image)
        with open(os.path.join(tmp, "boot", f"vmlinuz-{kver}"), "rb") as f:
            _write_atomic(os.path.join(d, "vmlinuz"), f.read())


def _drop_stale_debs(debdir, keep):
    for name in os.listdir(debdir):
        path = os.path.join(debdir, name)
        if name.endswith(".deb") and path not in keep:
            os.unlink(path)


def _write_atomic(path, data):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def ensure_built(force=False):
    """Build the image unless a valid one is cached.

    Returns {"kernel": path, "initrd": path, "kernel_package": name}.
    Serialized with a lock file so parallel test sessions build it once.
    """
    d = cache_dir()
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        old = _read_stamp(d)
        want = _stamp_for(_current_kernel_package(old))
        paths = {"kernel": os.path.join(d, "vmlinuz"),
                 "initrd": os.path.join(d, "host.cpio.gz"),
                 "kernel_package": want["kernel_package"]}
        if not force and old == want and all(
                os.path.exists(paths[k]) for k in ("kernel", "initrd")):
            return paths
        start = time.monotonic()
        _build(d, want["kernel_package"])
        _write_atomic(os.path.join(d, "stamp.json"),
                      json.dumps(want, indent=1).encode())
        _log(f"built {d} in {time.monotonic() - start:.1f} s")
        return paths


def main(argv):
    force = "--force" in argv[1:]
    if any(a not in ("--force",) for a in argv[1:]):
        print("usage: build-host [--force]", file=sys.stderr)
        return 2
    try:
        paths = ensure_built(force=force)
    except BuildError as e:
        print(f"build-host: {e}", file=sys.stderr)
        return 1
    print(f"kernel: {paths['kernel']}")
    print(f"initrd: {paths['initrd']}")
    return 0
