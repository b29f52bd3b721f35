"""`tabique disk`: create, info, resize, convert, checked against qemu-img and qemu-io;
bad input gets one clear line, a non-zero exit and no half-written file."""
import json
import os
import shutil
import struct
import subprocess
import time

import pytest

from conftest import run_on_pty

MIB = 1 << 20


@pytest.fixture(scope="module", autouse=True)
def qemu_tools():
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed: scripts/install-deps installs qemu-utils")


def disk(tabique, *args, cwd=None):
    """Runs `tabique disk ARGS` without a terminal; returns the CompletedProcess."""
    return subprocess.run([tabique, "disk", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


def ok(tabique, *args, cwd=None):
    r = disk(tabique, *args, cwd=cwd)
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    return r.stdout


def qemu(*argv, cwd=None):
    r = subprocess.run(list(map(str, argv)), capture_output=True, text=True, timeout=120, cwd=cwd)
    assert r.returncode == 0, f"{argv}: {r.stdout}{r.stderr}"
    return r.stdout


def qemu_check(path):
    qemu("qemu-img", "check", "-q", path)


def qemu_info(path):
    return json.loads(qemu("qemu-img", "info", "--output=json", path))


def one_line_error(r, *words, status=1):
    assert r.returncode == status, f"exit {r.returncode}: {r.stderr}"
    lines = [l for l in r.stderr.split("\n") if l.strip()]
    assert len(lines) == 1, f"expected one line, got: {lines}"
    assert lines[0].startswith("tabique: "), lines[0]
    for word in words:
        assert str(word) in lines[0], f"'{word}' not in '{lines[0]}'"


# --- create and info -----------------------------------------------------------------------

def test_create_qcow2_is_what_qemu_img_expects(tabique, tmp_path):
    path = tmp_path / "a.qcow2"
    out = ok(tabique, "create", path, "10G")
    assert "qcow2" in out and "10 GiB" in out
    qemu_check(path)
    info = qemu_info(path)
    assert info["format"] == "qcow2" and info["virtual-size"] == 10 << 30
    assert info["cluster-size"] == 65536
    assert os.path.getsize(path) < MIB, "creating is not allocating"


def test_huge_images_are_quick(tabique, tmp_path):
    start = time.monotonic()
    ok(tabique, "create", tmp_path / "p.qcow2", "1P")
    assert time.monotonic() - start < 1, "creating takes the same time whatever the size"
    qemu_check(tmp_path / "p.qcow2")
    ok(tabique, "create", tmp_path / "t.qcow2", "1T")
    start = time.monotonic()
    ok(tabique, "convert", tmp_path / "t.qcow2", tmp_path / "t.raw", "--format", "raw")
    ok(tabique, "convert", tmp_path / "t.raw", tmp_path / "t2.qcow2")
    assert time.monotonic() - start < 10, "unallocated parts are skipped, not read"
    assert os.stat(tmp_path / "t.raw").st_blocks == 0


def test_create_raw_and_cluster_sizes(tabique, tmp_path):
    ok(tabique, "create", tmp_path / "r.img", "512M", "--format", "raw")
    assert os.path.getsize(tmp_path / "r.img") == 512 * MIB
    assert qemu_info(tmp_path / "r.img")["format"] == "raw"
    for size in ("512", "4K", "2M"):
        path = tmp_path / f"c{size}.qcow2"
        ok(tabique, "create", path, "1G", "--cluster-size", size)
        qemu_check(path)
        assert qemu_info(path)["cluster-size"] == {"512": 512, "4K": 4096, "2M": 2 * MIB}[size]


def test_info_human_and_json(tabique, tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    ok(tabique, "create", base, "1G")
    ok(tabique, "create", top, "--backing", "base.qcow2")
    out = ok(tabique, "info", top)
    assert "qcow2 (version 3)" in out and "1 GiB" in out and "backing file:   base.qcow2 (qcow2)" in out
    info = json.loads(ok(tabique, "info", top, "--json"))
    assert info["format"] == "qcow2" and info["virtual_size"] == 1 << 30
    assert info["backing_file"] == "base.qcow2" and info["backing_format"] == "qcow2"
    assert info["cluster_size"] == 65536 and info["refcount_bits"] == 16
    assert info["dirty"] is False and info["allocated"] > 0
    q = qemu_info(top)
    assert q["backing-filename"] == "base.qcow2" and q["backing-filename-format"] == "qcow2"
    raw = json.loads(ok(tabique, "info", "--json", base))
    assert raw["virtual_size"] == 1 << 30


def test_create_over_a_raw_backing_file_relative_to_the_image(tabique, tmp_path):
    sub = tmp_path / "images"
    sub.mkdir()
    ok(tabique, "create", sub / "base.img", "4M", "--format", "raw")
    qemu("qemu-io", "-f", "raw", "-c", "write -q -P 0x5c 0 1M", sub / "base.img")
    # Run from elsewhere: the name is relative to the new image's folder.
    ok(tabique, "create", sub / "top.qcow2", "8M", "--backing", "base.img", cwd="/")
    qemu_check(sub / "top.qcow2")
    assert qemu_info(sub / "top.qcow2")["backing-filename-format"] == "raw"
    qemu("qemu-io", "-r", "-c", "read -q -P 0x5c 0 1M", "-c", "read -q -P 0 4M 4M",
         sub / "top.qcow2")


# --- resize --------------------------------------------------------------------------------

def test_resize_grows_and_keeps_the_data(tabique, tmp_path):
    path = tmp_path / "g.qcow2"
    # 512-byte clusters: an L1 table cluster maps 2 MiB, growing to 1 GiB moves it.
    ok(tabique, "create", path, "1M", "--cluster-size", "512")
    qemu("qemu-io", "-c", "write -q -P 0x21 0 1M", path)
    ok(tabique, "resize", path, "1G")
    qemu_check(path)
    assert qemu_info(path)["virtual-size"] == 1 << 30
    qemu("qemu-io", "-c", "read -q -P 0x21 0 1M", "-c", "write -q -P 0x22 1023M 1M", path)
    qemu_check(path)
    ok(tabique, "resize", path, "2G")
    qemu("qemu-io", "-r", "-c", "read -q -P 0x22 1023M 1M", path)


def test_resize_shrinks_only_with_shrink_and_never_data(tabique, tmp_path):
    path = tmp_path / "s.qcow2"
    ok(tabique, "create", path, "1G")
    qemu("qemu-io", "-c", "write -q -P 0x31 100M 64k", path)
    one_line_error(disk(tabique, "resize", path, "512M"), "--shrink")
    ok(tabique, "resize", path, "200M", "--shrink")
    assert qemu_info(path)["virtual-size"] == 200 * MIB
    one_line_error(disk(tabique, "resize", path, "50M", "--shrink"), "data past the new size")
    assert qemu_info(path)["virtual-size"] == 200 * MIB
    qemu_check(path)
    raw = tmp_path / "r.img"
    ok(tabique, "create", raw, "10M", "--format", "raw")
    qemu("qemu-io", "-f", "raw", "-c", "write -q -P 1 8M 4k", raw)
    one_line_error(disk(tabique, "resize", raw, "4M", "--shrink"), "data past the new size")
    ok(tabique, "resize", raw, "9M", "--shrink")
    assert os.path.getsize(raw) == 9 * MIB
    ok(tabique, "resize", raw, "20M")
    assert os.path.getsize(raw) == 20 * MIB


# --- convert -------------------------------------------------------------------------------

def test_convert_both_ways_compares_equal(tabique, tmp_path):
    src = tmp_path / "src.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", src, "64M")
    qemu("qemu-io", "-c", "write -q -P 0x41 0 3M", "-c", "write -q -P 0x42 40M 64k",
         "-c", "write -q -z 1M 1M", src)
    ok(tabique, "convert", src, tmp_path / "flat.raw", "--format", "raw")
    qemu("qemu-img", "compare", "-q", src, tmp_path / "flat.raw")
    ok(tabique, "convert", tmp_path / "flat.raw", tmp_path / "back.qcow2")
    qemu_check(tmp_path / "back.qcow2")
    qemu("qemu-img", "compare", "-q", src, tmp_path / "back.qcow2")
    # Sparse: 2 MiB of data in, about that much allocated out.
    assert qemu_info(tmp_path / "back.qcow2")["actual-size"] < 4 * MIB
    assert os.stat(tmp_path / "flat.raw").st_blocks * 512 < 4 * MIB


def test_convert_flattens_backing_chains_and_compressed_images(tabique, tmp_path):
    base, top = tmp_path / "base.qcow2", tmp_path / "top.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", base, "16M")
    qemu("qemu-io", "-c", "write -q -P 0x51 0 2M", base)
    qemu("qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", top)
    qemu("qemu-io", "-c", "write -q -P 0x52 1M 4k", top)
    ok(tabique, "convert", top, tmp_path / "flat.qcow2", "--cluster-size", "4K")
    qemu_check(tmp_path / "flat.qcow2")
    qemu("qemu-img", "compare", "-q", top, tmp_path / "flat.qcow2")
    assert "backing-filename" not in qemu_info(tmp_path / "flat.qcow2")
    qemu("qemu-img", "convert", "-c", "-O", "qcow2", top, tmp_path / "z.qcow2")
    ok(tabique, "convert", tmp_path / "z.qcow2", tmp_path / "z.raw", "--format", "raw")
    qemu("qemu-img", "compare", "-q", top, tmp_path / "z.raw")


def test_convert_shows_progress_on_a_terminal_and_a_summary(tabique, tmp_path):
    src = tmp_path / "p.img"
    ok(tabique, "create", src, "64M", "--format", "raw")
    qemu("qemu-io", "-f", "raw", "-c", "write -q -P 0x61 0 8M", src)
    r = run_on_pty([tabique, "disk", "convert", str(src), str(tmp_path / "p.qcow2")])
    assert r.status == 0, r.output
    assert "100%" in r.output and "64 MiB" in r.output
    assert "converted" in r.output and "8 MiB of data written" in r.output
    out = ok(tabique, "convert", src, tmp_path / "q.qcow2")  # no terminal: no bar
    assert "%" not in out and "8 MiB of data written" in out


def test_help(tabique):
    r = subprocess.run([tabique, "--help"], capture_output=True, text=True)
    assert "disk" in r.stdout
    r = subprocess.run([tabique, "disk", "--help"], capture_output=True, text=True)
    assert r.returncode == 0
    for word in ("create", "info", "resize", "convert", "--backing", "--shrink", "--json"):
        assert word in r.stdout


# --- bad input -----------------------------------------------------------------------------

def test_missing_file(tabique, tmp_path):
    missing = "/nonexistent/x.qcow2"
    for args in (["info", missing], ["resize", missing, "1G"],
                 ["convert", missing, tmp_path / "out.qcow2"],
                 ["create", "/nonexistent/dir/x.qcow2", "1G"]):
        one_line_error(disk(tabique, *args), "/nonexistent/", "No such file")
    assert not os.listdir(tmp_path)


def test_a_directory(tabique, tmp_path):
    one_line_error(disk(tabique, "info", tmp_path), str(tmp_path), "is a directory")
    one_line_error(disk(tabique, "convert", tmp_path, tmp_path / "o.img"), "is a directory")


def test_junk(tabique, tmp_path):
    junk = tmp_path / "junk.qcow2"
    junk.write_bytes(b"QFI\xfb" + os.urandom(4092))
    r = disk(tabique, "info", junk)
    assert r.returncode == 1 and len(r.stderr.strip().split("\n")) == 1, r.stderr
    assert str(junk) in r.stderr
    # Without the magic it is a raw image: 4 KiB of whatever.
    other = tmp_path / "other.bin"
    other.write_bytes(os.urandom(4096))
    assert json.loads(ok(tabique, "info", "--json", other))["format"] == "raw"


@pytest.mark.parametrize("size", ["lots", "10Q", "1.5G", "", "-1G"])
def test_bad_sizes(tabique, tmp_path, size):
    # "-1G" looks like an option: that is what it is told.
    want = "unknown option '-1'" if size.startswith("-") else "not a size"
    one_line_error(disk(tabique, "create", tmp_path / "x.qcow2", size), want, status=2)
    assert not os.path.exists(tmp_path / "x.qcow2")


def test_sizes_out_of_range(tabique, tmp_path):
    one_line_error(disk(tabique, "create", tmp_path / "x.qcow2", "1000"), "multiple of 512")
    one_line_error(disk(tabique, "create", tmp_path / "x.img", "0", "--format", "raw"),
                   "multiple of 512")
    one_line_error(disk(tabique, "create", tmp_path / "x.qcow2", "1P", "--cluster-size", "512"),
                   "too large")
    one_line_error(disk(tabique, "create", tmp_path / "x.qcow2", "1G", "--cluster-size", "3K"),
                   "power of two", status=2)
    assert not os.listdir(tmp_path)


def test_unknown_format_and_commands(tabique, tmp_path):
    one_line_error(disk(tabique, "create", tmp_path / "x", "1G", "--format", "vmdk"),
                   "unknown format 'vmdk'", status=2)
    one_line_error(disk(tabique, "frobnicate"), "unknown command", status=2)
    one_line_error(disk(tabique, "info"), "one FILE", status=2)
    one_line_error(disk(tabique, "info", "a", "b"), "one FILE", status=2)
    one_line_error(disk(tabique, "convert", "a"), "SRC and DST", status=2)
    one_line_error(disk(tabique, "create", tmp_path / "x", "1G", "--frob"), "unknown option",
                   status=2)
    one_line_error(disk(tabique, "create", tmp_path / "x", "1G", "--format", "raw",
                        "--backing", "b"), "for qcow2 images", status=2)
    assert not os.listdir(tmp_path)


def test_an_existing_destination_is_never_overwritten(tabique, tmp_path):
    dst = tmp_path / "dst.qcow2"
    dst.write_bytes(b"precious")
    one_line_error(disk(tabique, "create", dst, "1G"), "already exists")
    one_line_error(disk(tabique, "create", dst, "1G", "--format", "raw"), "already exists")
    ok(tabique, "create", tmp_path / "src.img", "1M", "--format", "raw")
    one_line_error(disk(tabique, "convert", tmp_path / "src.img", dst), "already exists")
    assert dst.read_bytes() == b"precious"


def test_truncated_qcow2(tabique, tmp_path):
    path = tmp_path / "t.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", path, "1G")
    qemu("qemu-io", "-c", "write -q -P 1 0 1M", path)
    with open(path, "r+b") as f:
        f.truncate(100 * 1024)
    for args in (["info", path], ["convert", path, tmp_path / "o.raw"], ["resize", path, "2G"]):
        one_line_error(disk(tabique, *args), str(path), "truncated")
    assert not os.path.exists(tmp_path / "o.raw")


def test_a_backing_loop(tabique, tmp_path):
    a, b = tmp_path / "a.qcow2", tmp_path / "b.qcow2"
    ok(tabique, "create", tmp_path / "c.qcow2", "1G")
    ok(tabique, "create", a, "--backing", "c.qcow2")
    ok(tabique, "create", b, "--backing", "a.qcow2")
    # Point a at b: the name has the same length, so it fits where "c.qcow2" was.
    with open(a, "r+b") as f:
        f.seek(8)
        off, = struct.unpack(">Q", f.read(8))
        f.seek(off)
        f.write(b"b.qcow2")
    one_line_error(disk(tabique, "convert", b, tmp_path / "o.raw"),
                   f"backing chain loop: {b} -> {a} -> {b}")
    one_line_error(disk(tabique, "create", tmp_path / "d.qcow2", "--backing", "b.qcow2"),
                   "backing chain loop")
    assert not os.path.exists(tmp_path / "o.raw") and not os.path.exists(tmp_path / "d.qcow2")


def test_a_failing_convert_leaves_nothing(tabique, tmp_path):
    src = tmp_path / "bad.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", src, "16M")
    qemu("qemu-io", "-c", "write -q -P 1 0 4M", src)
    with open(src, "r+b") as f:  # the L2 table's entries point past the end of the file
        f.seek(40)
        l1, = struct.unpack(">Q", f.read(8))
        f.seek(l1)
        l2, = struct.unpack(">Q", f.read(8))
        f.seek((l2 & 0x00fffffffffffe00) + 8 * 40)
        f.write(struct.pack(">Q", (1 << 63) | (1 << 40)))
    one_line_error(disk(tabique, "convert", src, tmp_path / "out.qcow2"), "outside the file")
    assert not os.path.exists(tmp_path / "out.qcow2")
    assert [p.name for p in tmp_path.iterdir()] == ["bad.qcow2"]


def test_run_disk_format_option(tabique, tmp_path):
    """--disk takes format=raw|qcow2; the parser says what is wrong in one line."""
    r = run_on_pty([tabique, "run", "--kernel", "/nonexistent/vmlinuz", "--disk",
                    f"{tmp_path}/x.img,format=vmdk"])
    assert r.status == 2 and len(r.lines) == 1 and "unknown format 'vmdk'" in r.lines[0], r.output
    path = tmp_path / "t.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", path, "1G")
    with open(path, "r+b") as f:
        f.truncate(100 * 1024)
    r = run_on_pty([tabique, "run", "--kernel", "/nonexistent/vmlinuz", "--disk",
                    f"{path},format=qcow2"])
    assert r.status == 1 and len(r.lines) == 1 and "truncated" in r.lines[0], r.output
