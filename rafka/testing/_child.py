"""`python -m rafka.testing._child PARENT_PID broker ...` is `rafka broker ...` tied to its parent.

A test run killed outright (SIGKILL from a CI timeout) tears nothing down; on Linux the kernel
then sends the broker SIGTERM, its clean shutdown, instead of leaving it holding a port and a
directory. The broker is the same code the `rafka` command runs: `rafka.cli.launch.main`.
"""

from __future__ import annotations

import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def _die_with_parent(parent_pid: int) -> bool:
    """Ask for SIGTERM when the parent goes; False if it has gone already."""
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    # The parent may have died between fork and prctl: then we were re-parented already.
    return os.getppid() == parent_pid


def main() -> None:
    parent_pid = int(sys.argv[1])
    if not _die_with_parent(parent_pid):
        sys.exit(0)
    sys.argv = ["rafka", *sys.argv[2:]]
    # kio registers Hypothesis strategies whenever Hypothesis is importable, which a test
    # environment has: that import, and the `.hypothesis` directory it creates in the fresh working
    # directory, cost a broker start ~0.8 s. The broker never uses it; hide it.
    sys.modules["hypothesis"] = None  # type: ignore[assignment]
    from rafka.cli.launch import main as run

    run()


if __name__ == "__main__":
    main()
