"""What the manager says to bad input: one clear line, a non-zero exit, and
nothing lost or half-made."""

import json
import os

import pytest


def one_line(res):
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one line, got {res.stderr!r}"
    assert lines[0].startswith("tabique: ")
    return lines[0]


@pytest.mark.parametrize("name,why", [
    ("a/b", "has '/'"),
    ("..", "must start with a letter or a digit"),
    (".hidden", "must start with a letter or a digit"),
    ("", "cannot be empty"),
    ("x" * 49, "too long"),
    ("sp ace", "has ' '"),
    ("dollar$", "has '$'"),
])
def test_invalid_names(store, tiny, name, why):
    res = store.run("create", name, "--kernel", tiny["halt"], check=False)
    assert res.returncode == 2
    assert why in one_line(res)
    assert not os.path.exists(os.path.join(store.home, "vms", name or "x", "vm.json"))


def test_duplicate_name_keeps_the_first(store, tiny):
    store.create_tiny("web", tiny["halt"], "--cpus", "2")
    res = store.run("create", "web", "--kernel", tiny["halt"], check=False)
    assert res.returncode == 1
    assert "already exists" in one_line(res)
    assert store.list()["web"]["cpus"] == 2


@pytest.mark.parametrize("args,why", [
    (["--cpus", "0"], "--cpus"),
    (["--cpus", "many"], "--cpus"),
    (["--memory", "1K"], "--memory"),
    (["--memory", "lots"], "--memory"),
    (["--disk", "/no/such/image"], "No such file"),
    (["--net", "bogus"], "--net"),
    (["--vsock", "2"], "--vsock"),
    (["--on-reboot", "maybe"], "--on-reboot"),
    (["--frobnicate"], "unknown option"),
    (["--kernel", "/no/such/kernel"], "No such file"),
])
def test_bad_create_options(store, args, why):
    res = store.run("create", "web", *args, check=False)
    assert res.returncode in (1, 2)
    assert why in one_line(res)
    assert "web" not in store.list()


def test_starting_a_running_vm(store, tiny):
    store.create_tiny("web", tiny["halt"])
    store.run("start", "web")
    pid = store.list()["web"]["pid"]
    res = store.run("start", "web", check=False)
    assert res.returncode == 1 and "already running" in one_line(res)
    assert store.list()["web"]["pid"] == pid


def test_removing_a_running_vm_needs_force(store, tiny):
    store.create_tiny("web", tiny["halt"])
    store.run("start", "web")
    res = store.run("rm", "web", check=False)
    assert res.returncode == 1 and "--force" in one_line(res)
    assert store.list()["web"]["state"] == "running"
    store.run("rm", "--force", "web")
    assert "web" not in store.list()


def test_set_on_a_running_vm(store, tiny):
    store.create_tiny("web", tiny["halt"])
    store.run("start", "web")
    res = store.run("set", "web", "--cpus", "2", check=False)
    assert res.returncode == 1 and "stop it" in one_line(res)
    assert store.list()["web"]["cpus"] == 1


def test_definition_edited_into_invalid_json(store, tiny):
    store.create_tiny("web", tiny["halt"])
    store.create_tiny("db", tiny["halt"])
    path = os.path.join(store.folder("web"), "vm.json")
    with open(path) as f:
        good = f.read()
    with open(path, "w") as f:
        f.write(good.replace('"cpus": 1', '"cpus": 1,,'))
    res = store.run("start", "web", check=False)
    assert res.returncode == 1
    line = one_line(res)
    assert "vm.json is not valid JSON: line" in line and "fix or remove it" in line
    vms = store.list()
    assert vms["web"]["state"] == "invalid" and vms["db"]["state"] == "stopped"
    with open(path) as f:
        assert f.read() != good  # untouched: the user's edit is not thrown away


def test_definition_with_a_wrong_field(store, tiny):
    store.create_tiny("web", tiny["halt"])
    path = os.path.join(store.folder("web"), "vm.json")
    with open(path) as f:
        d = json.load(f)
    d["cpus"] = "four"
    with open(path, "w") as f:
        json.dump(d, f)
    res = store.run("info", "web", check=False)
    assert res.returncode == 1 and '"cpus" must be an integer' in one_line(res)


def test_disk_missing_at_start(store, tiny, tmp_path):
    disk = tmp_path / "d.img"
    disk.write_bytes(b"\0" * (1 << 20))
    store.create_tiny("web", tiny["halt"], "--disk", str(disk))
    disk.unlink()
    res = store.run("start", "web", check=False)
    assert res.returncode == 1
    assert "d.img" in one_line(res)
    assert store.list()["web"]["state"] == "stopped"
    assert store.processes() == []


@pytest.mark.parametrize("cmd", ["start", "stop", "kill", "pause", "resume", "console",
                                 "info", "rm"])
def test_unknown_vm(store, cmd):
    res = store.run(cmd, "ghost", check=False)
    assert res.returncode == 1
    assert "no VM named 'ghost'" in one_line(res)


@pytest.mark.parametrize("cmd", ["stop", "kill", "pause", "resume", "console"])
def test_commands_that_need_a_running_vm(store, tiny, cmd):
    store.create_tiny("web", tiny["halt"])
    res = store.run(cmd, "web", check=False)
    assert res.returncode == 1 and "is not running" in one_line(res)
