"""The harness itself: a guest that shows nothing gets a warning that says
where its vCPUs are (Ctrl-A r), then one retry, then a failure. The guest is
the tiny bzImage of tests/manage, which prints no ready line and halts."""
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
