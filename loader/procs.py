"""Whether another process still runs: one answer for the embedded server's handle list, the
workers' watch on their loader and the clean-up of killed loads' spill folders."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """True while pid runs; a zombie (killed, not yet reaped by its parent) counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: fall back to a signal probe
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
