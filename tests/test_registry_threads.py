"""The registry loads a family once, and a second thread asking for it while
the first is still registering waits instead of seeing an empty family
(found by ``xenlu validate`` of a large LU stream: its sections decode on two
worker threads and the libxc records of a domain section came out as
"unknown mandatory record type")."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_a_second_thread_waits_for_the_family_being_registered() -> None:
    code = textwrap.dedent(
        """
        import threading, time
        import xenlu  # fills registry.FAMILY_RECORDS
        from xenlu.core import registry

        slow = registry.FAMILY_RECORDS["libxc"]
        started = threading.Event()

        def loader():
            started.set()
            time.sleep(0.3)  # a slow first import of the family's modules
            return slow()

        registry.FAMILY_RECORDS["libxc"] = loader
        got = {}

        def ask(name):
            got[name] = registry.LIBXC.get(0x11)  # X86_CPUID_POLICY

        a = threading.Thread(target=ask, args=("a",))
        a.start()
        started.wait()
        b = threading.Thread(target=ask, args=("b",))
        b.start()
        a.join(); b.join()
        print(got["a"] is not None, got["b"] is not None, got["a"] is got["b"])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.split() == ["True", "True", "True"], out.stderr
