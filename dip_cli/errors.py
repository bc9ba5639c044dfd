"""One error family. Each message names the offending value and says how to fix it.

The CLI turns these into one line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations

import signal


class DipError(Exception):
    """Base class: something the user can act on."""

    exit_code = 1


class InputError(DipError, ValueError):
    """Bad input or usage: missing/unreadable files, bad option values, too large an image.

    Also a ValueError, so Python callers of the array API can catch it the usual way.
    """

    exit_code = 2


class FitError(DipError):
    """The restoration failed while running (diverged, device error)."""

    exit_code = 1


class Interrupted(DipError):
    """Ctrl-C or SIGTERM: a checkpoint was saved and the run can be resumed.

    The exit code is the shell's for the signal: 130 for SIGINT, 143 for SIGTERM.
    """

    def __init__(self, message: str, signum: int = signal.SIGINT) -> None:
        super().__init__(message)
        self.signum = int(signum)
        self.exit_code = 128 + self.signum

    def __reduce__(self):  # keeps the signal when a worker process sends it back
        return (type(self), (str(self), self.signum))


class DipWarning(UserWarning):
    """Something the user should know that does not stop the run (a fallback, a substitution)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM outside the fit loop (nothing to checkpoint yet): stop like Ctrl-C, exit 143."""

    signum = signal.SIGTERM


def signal_exit_code(exc: BaseException) -> int:
    """128 + the signal that stopped the run (SIGINT unless it says otherwise)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))
