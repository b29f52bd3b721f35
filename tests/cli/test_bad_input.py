"""Bad input to `tabique run`: one clear line, a non-zero exit, no crash, terminal intact."""
import os
import shutil
import subprocess

import pytest

from conftest import run_on_pty

GIB = 1 << 30


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A real bzImage: the default guest's kernel (prepared by scripts/test)."""
    tabique = os.environ.get("TABIQUE_BIN")
    out = subprocess.run([tabique, "prepare-guest"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    path = out.stdout.split("\n")[0].split()[1]  # "kernel  PATH"
    assert os.path.getsize(path) > 1 << 20
    return path


def assert_one_line_error(result, *words, status=None):
    assert result.status > 0, f"expected a clean non-zero exit, got {result.status}"
    if status is not None:
        assert result.status == status, result.output
    assert result.tty_restored, "the terminal was left in another mode"
    assert len(result.lines) == 1, f"expected one line, got: {result.lines}"
    line = result.lines[0]
    assert line.startswith("tabique: "), line
    for word in words:
        assert word in line, f"'{word}' not in '{line}'"


def test_missing_kernel(tabique):
    r = run_on_pty([tabique, "run", "--kernel", "/nonexistent/vmlinuz"])
    assert_one_line_error(r, "/nonexistent/vmlinuz", "No such file", status=1)


def test_unreadable_kernel_is_a_directory(tabique, tmp_path):
    r = run_on_pty([tabique, "run", "--kernel", str(tmp_path)])
    assert_one_line_error(r, str(tmp_path), status=1)


def test_not_a_bzimage(tabique, tmp_path):
    junk = tmp_path / "vmlinuz"
    junk.write_bytes(os.urandom(1 << 20))
    r = run_on_pty([tabique, "run", "--kernel", str(junk)])
    assert_one_line_error(r, "not a Linux bzImage", status=1)


def test_truncated_bzimage(tabique, kernel, tmp_path):
    cut = tmp_path / "vmlinuz"
    cut.write_bytes(open(kernel, "rb").read()[: 2 << 20])
    r = run_on_pty([tabique, "run", "--kernel", str(cut)])
    assert_one_line_error(r, "truncated", status=1)


def test_initrd_too_big_for_memory(tabique, kernel, tmp_path):
    big = tmp_path / "initrd"
    with open(big, "wb") as f:
        f.truncate(200 << 20)
    r = run_on_pty([tabique, "run", "--kernel", kernel, "--initrd", str(big), "--memory", "128M"])
    assert_one_line_error(r, "initrd", "--memory", status=1)


def test_missing_initrd(tabique, kernel):
    r = run_on_pty([tabique, "run", "--kernel", kernel, "--initrd", "/nonexistent/initrd"])
    assert_one_line_error(r, "/nonexistent/initrd", status=1)


@pytest.mark.parametrize("memory", ["0", "1K", "lots", "-5G", "1.5G"])
def test_bad_memory(tabique, memory):
    r = run_on_pty([tabique, "run", "--memory", memory])
    assert_one_line_error(r, "--memory", status=2)


def test_memory_more_than_host(tabique):
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    r = run_on_pty([tabique, "run", "--memory", f"{host // GIB + 8}G"])
    assert_one_line_error(r, "--memory", "more than this host has", status=2)


@pytest.mark.parametrize("cpus", ["0", "100000", "two", "-1"])
def test_bad_cpus(tabique, cpus):
    r = run_on_pty([tabique, "run", "--cpus", cpus])
    assert_one_line_error(r, "--cpus", status=2)


@pytest.mark.parametrize("argv", [["--frobnicate"], ["--cpus"], ["extra-arg"],
                                  ["--on-reboot", "sometimes"]])
def test_bad_options(tabique, argv):
    r = run_on_pty([tabique, "run"] + argv)
    assert_one_line_error(r, status=2)


def test_unknown_command(tabique):
    r = run_on_pty([tabique, "fly"])
    assert_one_line_error(r, "unknown command", status=2)


def test_no_dev_kvm(tabique, kernel):
    """A host without /dev/kvm: hide it in a private mount namespace."""
    if shutil.which("unshare") is None:
        pytest.fail("unshare (util-linux) is needed for this test")
    script = f'mount -t tmpfs none /dev && exec "{tabique}" run --kernel "{kernel}"'
    r = run_on_pty(["unshare", "-m", "sh", "-c", script])
    assert_one_line_error(r, "/dev/kvm", "kvm_amd", status=1)


def test_no_permission_on_dev_kvm(tabique, kernel, tmp_path):
    """An unprivileged user without the kvm group (our /dev/kvm is root-only)."""
    if os.geteuid() != 0:
        pytest.fail("this test creates an unprivileged process, so it needs root")
    st = os.stat("/dev/kvm")
    assert st.st_mode & 0o006 == 0, "/dev/kvm is world-accessible here; cannot test denial"
    shutil.copy(kernel, tmp_path / "vmlinuz")
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "vmlinuz", 0o644)

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    r = run_on_pty([tabique, "run", "--kernel", str(tmp_path / "vmlinuz")], preexec=drop)
    assert_one_line_error(r, "permission denied", "kvm", status=1)


# --- --disk: every error is found before anything starts -------------------------------
# A kernel that does not exist: should a disk error go unnoticed, tabique stops at the
# kernel instead of booting (and the test fails on the words, not on a timeout).
NO_KERNEL = ["--kernel", "/nonexistent/vmlinuz"]


def run_disk(tabique, *specs, preexec=None):
    argv = [tabique, "run", *NO_KERNEL]
    for spec in specs:
        argv += ["--disk", str(spec)]
    return run_on_pty(argv, preexec=preexec)


def image(tmp_path, size=1 << 20, name="disk.img"):
    path = tmp_path / name
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_disk_missing(tabique):
    r = run_disk(tabique, "/nonexistent/disk.img")
    assert_one_line_error(r, "disk /nonexistent/disk.img", "No such file", status=1)


def test_disk_is_a_directory(tabique, tmp_path):
    r = run_disk(tabique, tmp_path)
    assert_one_line_error(r, f"disk {tmp_path}", "is a directory", status=1)
    r = run_disk(tabique, f"{tmp_path},readonly")
    assert_one_line_error(r, f"disk {tmp_path}", "is a directory", status=1)


def test_disk_is_empty(tabique, tmp_path):
    path = image(tmp_path, 0)
    r = run_disk(tabique, path)
    assert_one_line_error(r, f"disk {path}", "is empty", status=1)


def test_disk_size_not_a_multiple_of_512(tabique, tmp_path):
    """Refused rather than rounded down: the message says how to fix it."""
    path = image(tmp_path, 1000)
    r = run_disk(tabique, path)
    assert_one_line_error(r, f"disk {path}", "not a multiple of 512", "truncate -s 1024",
                          status=1)


def test_disk_is_a_fifo(tabique, tmp_path):
    """Never blocks on open: FIFOs and other special files are refused."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    r = run_disk(tabique, path)
    assert_one_line_error(r, f"disk {path}", "neither an image file nor a block device", status=1)


def test_disk_without_permission(tabique, tmp_path):
    if os.geteuid() != 0:
        pytest.fail("this test creates an unprivileged process, so it needs root")
    os.chmod(tmp_path, 0o755)
    path = image(tmp_path)
    os.chmod(path, 0o644)  # readable, not writable, by others

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    r = run_disk(tabique, path, preexec=drop)
    assert_one_line_error(r, f"disk {path}", "permission denied", "readonly", status=1)
    os.chmod(path, 0o600)
    r = run_disk(tabique, f"{path},readonly", preexec=drop)
    assert_one_line_error(r, f"disk {path}", "permission denied", status=1)


def test_disk_locked_by_another_process(tabique, tmp_path):
    """A POSIX lock held elsewhere (another VM, another tool) conflicts with ours."""
    import fcntl
    path = image(tmp_path)
    with open(path, "r+b") as f:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = run_disk(tabique, path)
        assert_one_line_error(r, f"tabique: disk {path} is in use by another VM (locked)",
                              status=1)
        r = run_disk(tabique, f"{path},readonly")
        assert_one_line_error(r, "is in use by another VM (locked)", status=1)


def test_disk_given_twice(tabique, tmp_path):
    path = image(tmp_path)
    r = run_disk(tabique, path, path)
    assert_one_line_error(r, f"disk {path} is in use by another VM (locked)", status=1)
    r = run_disk(tabique, path, f"{path},readonly")
    assert_one_line_error(r, "is in use by another VM (locked)", status=1)


def test_disk_readonly_twice_is_shared(tabique, tmp_path):
    """Readers share the image: the run gets as far as the (missing) kernel."""
    path = image(tmp_path)
    r = run_disk(tabique, f"{path},readonly", f"{path},readonly")
    assert_one_line_error(r, "/nonexistent/vmlinuz", status=1)


@pytest.mark.parametrize("spec", ["", ",readonly", "IMG,", "IMG,ro", "IMG,readonly=yes",
                                  "IMG,readonly,readonly", "IMG,serial=",
                                  "IMG,serial=123456789012345678901", "IMG,serial=a,serial=b",
                                  "IMG,cache=none"])
def test_disk_bad_spec(tabique, tmp_path, spec):
    spec = spec.replace("IMG", str(image(tmp_path)))
    r = run_disk(tabique, spec)
    assert_one_line_error(r, "--disk", status=2)


def test_disk_too_many(tabique, tmp_path):
    paths = [image(tmp_path, name=f"d{i}.img") for i in range(17)]
    r = run_disk(tabique, *paths)
    assert_one_line_error(r, "too many --disk", "16", status=2)


def test_disk_option_needs_a_value(tabique):
    r = run_on_pty([tabique, "run", "--disk"])
    assert_one_line_error(r, "--disk", "needs a value", status=2)


# --- --vsock ------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["", "cid=3", "socket=/tmp/x.sock", "cid=2,socket=/tmp/x.sock",
                                  "cid=abc,socket=/tmp/x.sock", "cid=4294967295,socket=/x",
                                  "cid=3,socket=", "cid=3,socket=/x,port=1",
                                  "cid=3,socket=/" + "a" * 100])
def test_vsock_bad_spec(tabique, spec):
    r = run_on_pty([tabique, "run", "--vsock", spec])
    assert_one_line_error(r, "--vsock", status=2)


def test_vsock_twice(tabique, tmp_path):
    spec = f"cid=3,socket={tmp_path}/v.sock"
    r = run_on_pty([tabique, "run", "--vsock", spec, "--vsock", spec])
    assert_one_line_error(r, "--vsock", "twice", status=2)


def test_vsock_socket_in_a_missing_directory(tabique):
    r = run_on_pty([tabique, "run", "--vsock", "cid=3,socket=/nonexistent/dir/v.sock"])
    assert_one_line_error(r, "/nonexistent/dir/v.sock", "directory", status=1)


def test_vsock_socket_in_use_by_a_live_listener(tabique, tmp_path):
    import socket
    path = str(tmp_path / "v.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(path)
        other.listen(1)
        r = run_on_pty([tabique, "run", "--vsock", f"cid=3,socket={path}"])
    assert_one_line_error(r, path, "in use", status=1)
    assert os.path.exists(path), "another program's socket was left alone"


def test_vsock_path_is_not_a_socket(tabique, tmp_path):
    path = tmp_path / "file"
    path.write_text("mine")
    r = run_on_pty([tabique, "run", "--vsock", f"cid=3,socket={path}"])
    assert_one_line_error(r, str(path), "not a socket", status=1)
    assert path.read_text() == "mine"


# --- --net: found before the VM starts; a port or tap we cannot have stops the run ---

@pytest.mark.parametrize("spec", ["", "bridge", "user,", "user,,mac=52:54:00:00:00:01",
                                  "user,hostfwd=tcp::80", "user,hostfwd=sctp::80-:80",
                                  "user,hostfwd=tcp::0-:80", "user,hostfwd=tcp::65536-:80",
                                  "user,hostfwd=tcp::80-:99999", "user,hostfwd=tcp:1.2.3:80-:80",
                                  "user,mac=01:00:5e:00:00:01", "user,mac=52:54:00:zz:00:01",
                                  "user,ifname=tap0", "tap", "tap,ifname=",
                                  "tap,ifname=name-that-is-too-long", "tap,ifname=a/b"])
def test_net_bad_spec(tabique, spec):
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--net", spec])
    assert_one_line_error(r, "--net", status=2)


def test_net_too_many(tabique):
    r = run_on_pty([tabique, "run", *NO_KERNEL] + ["--net", "user"] * 9)
    assert_one_line_error(r, "too many --net", "8", status=2)


@pytest.mark.parametrize("proto", ["tcp", "udp"])
def test_net_hostfwd_port_in_use(tabique, proto):
    import socket
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as other:
        other.bind(("127.0.0.1", 0))
        if proto == "tcp":
            other.listen(1)
        port = other.getsockname()[1]
        r = run_on_pty([tabique, "run", *NO_KERNEL, "--net",
                        f"user,hostfwd={proto}::{port}-:80"])
    assert_one_line_error(r, f"{proto} port 127.0.0.1:{port}", "Address already in use",
                          status=1)


def test_net_tap_that_is_not_a_tap(tabique):
    """lo exists and is no tap: refused, and nothing is created on this host."""
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--net", "tap,ifname=lo"])
    assert_one_line_error(r, "cannot open tap device lo", "CAP_NET_ADMIN", status=1)


def test_net_tap_without_privileges(tabique):
    """Creating a tap needs CAP_NET_ADMIN: an unprivileged user is told so."""
    if os.geteuid() != 0:
        pytest.fail("this test creates an unprivileged process, so it needs root")

    def drop():
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)

    r = run_on_pty([tabique, "run", *NO_KERNEL, "--net", "tap,ifname=tbqnotthere0"],
                   preexec=drop)
    assert_one_line_error(r, "cannot open tap device tbqnotthere0",
                          "needs CAP_NET_ADMIN or an existing tap owned by you", status=1)


# --- --api-socket and --name: the control API ---------------------------------------

def test_api_socket_in_a_missing_directory(tabique):
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--api-socket", "/nonexistent/dir/api.sock"])
    assert_one_line_error(r, "--api-socket", "/nonexistent/dir/api.sock", "directory",
                          status=1)


def test_api_socket_in_use_by_a_live_listener(tabique, tmp_path):
    import socket
    path = str(tmp_path / "api.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as other:
        other.bind(path)
        other.listen(1)
        r = run_on_pty([tabique, "run", *NO_KERNEL, "--api-socket", path])
        assert_one_line_error(r, "--api-socket", path, "in use", status=1)
        assert os.path.exists(path), "another program's socket was removed"


def test_api_socket_path_is_not_a_socket(tabique, tmp_path):
    path = tmp_path / "file"
    path.write_text("mine")
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--api-socket", str(path)])
    assert_one_line_error(r, str(path), "not a socket", status=1)
    assert path.read_text() == "mine"


def test_api_socket_path_too_long(tabique, tmp_path):
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--api-socket", "/tmp/" + "a" * 120])
    assert_one_line_error(r, "--api-socket", "107 bytes", status=1)


def test_api_socket_stale_is_replaced_and_removed_on_error(tabique, tmp_path):
    """A socket left by a VMM that died is taken over; when the run then fails
    (here: a disk that is not there), the socket goes too."""
    import socket
    path = str(tmp_path / "api.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(path)  # bound, never listening: nobody answers
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--api-socket", path,
                    "--disk", str(tmp_path / "missing.img")])
    assert_one_line_error(r, "missing.img", status=1)
    assert not os.path.exists(path), "the API socket outlived a failed run"


def test_api_socket_removed_when_the_kernel_is_bad(tabique, tmp_path):
    """The server is up by then: its socket is removed on that way out too."""
    junk = tmp_path / "vmlinuz"
    junk.write_bytes(os.urandom(1 << 20))
    path = str(tmp_path / "api.sock")
    r = run_on_pty([tabique, "run", "--kernel", str(junk), "--api-socket", path])
    assert_one_line_error(r, "not a Linux bzImage", status=1)
    assert not os.path.exists(path), "the API socket outlived a failed run"


@pytest.mark.parametrize("name", ["", "-x", ".x", "_x", "a b", "a/b", "x" * 64, "caf\u00e9",
                                  "a\nb"])
def test_bad_name(tabique, name):
    r = run_on_pty([tabique, "run", *NO_KERNEL, "--name", name])
    assert_one_line_error(r, "--name", "letters, digits", status=2)


def test_name_needs_a_value(tabique):
    r = run_on_pty([tabique, "run", "--name"])
    assert_one_line_error(r, "--name", "needs a value", status=2)
