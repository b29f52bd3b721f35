"""Scratch (not committed): the silent-boot warning path, and a boot loop."""
import os
import warnings
import pytest
from conftest import InnerVM, NestedHostTimeout, tabique_run_argv, ROOT

TINY = os.path.join(ROOT, "build", "tests", "manage", "tiny-halt.bzImage")


def test_silent_guest_warning_names_its_vcpus(host, tabique_bin):
    vm = InnerVM(host, [tabique_bin, "run", "--kernel", TINY, "--cpus", "2",
                        "--memory", "64M"]).start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(NestedHostTimeout):
            vm.wait_ready(timeout=20, retries=1)
    text = "\n".join(str(w.message) for w in caught)
    print(text)
    assert "vCPU 0: halted, long mode" in text and "vCPU 1: uninitialized" in text


@pytest.mark.skipif(not os.environ.get("BOOT_LOOP"), reason="BOOT_LOOP=N")
def test_boot_loop(host, tabique_bin, default_guest):
    n = int(os.environ["BOOT_LOOP"])
    hung = []
    for i in range(n):
        vm = InnerVM(host, tabique_run_argv(tabique_bin, default_guest, 2, "512M")).start()
        try:
            secs = vm.wait_ready(timeout=240, retries=0)
            print(f"boot {i}: {secs:.1f} s", flush=True)
        except NestedHostTimeout:
            where = vm.where_are_the_vcpus()
            print(f"boot {i}: HUNG\n{where}", flush=True)
            hung.append(where)
            vm._abandon()
            continue
        vm.stop()
    print(f"{len(hung)} of {n} hung")
    for h in hung:
        print(h)


@pytest.mark.skipif(not os.environ.get("TRIO_LOOP"), reason="TRIO_LOOP=N")
def test_trio_loop(host, tabique_bin, default_guest):
    """Rounds of three managed VMs started at once; a silent one is dumped."""
    import shlex, time
    home = "/tmp/trio-home"
    g = ["--kernel", default_guest["kernel"], "--initrd", default_guest["initrd"],
         "--cmdline", default_guest["cmdline"]]
    def tq(*args, timeout=300):
        cmd = " ".join(shlex.quote(a) for a in ["env", f"TABIQUE_HOME={home}", tabique_bin, *args])
        return host.run(cmd + " 2>&1", timeout=timeout)
    hung = []
    for r in range(int(os.environ["TRIO_LOOP"])):
        for n in ("a", "b", "c"):
            tq("create", n, "--cpus", "1", "--memory", "256M", *g)
        for n in ("a", "b", "c"):
            tq("start", n)
        begin = time.monotonic()
        pending = {"a", "b", "c"}
        while pending and time.monotonic() - begin < 300:
            for n in sorted(pending):
                out, _ = host.run(f"grep -c 'default guest ready' {home}/vms/{n}/console.log", 30)
                if out.strip().isdigit() and int(out.strip()) > 0:
                    pending.discard(n)
            time.sleep(3)
        print(f"round {r}: {time.monotonic() - begin:.0f} s, silent: {sorted(pending)}", flush=True)
        for n in ("a", "b", "c"):
            for k in range(3 if n in pending else 1):
                v, _ = host.run(f"curl -sS -m 15 --unix-socket {home}/vms/{n}/api.sock http://localhost/v1/vm/vcpus", 30)
                print(f"  {n}{' SILENT' if n in pending else ''} vcpus: {v}", flush=True)
                time.sleep(2)
            if n in pending:
                log, _ = host.run(f"tail -c 300 {home}/vms/{n}/console.log", 30)
                print(f"  log: {log!r}", flush=True)
                hung.append(v)
        for n in ("a", "b", "c"):
            tq("rm", "--force", n)
    print(f"{len(hung)} silent")
