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
