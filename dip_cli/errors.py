"""One error family. Each message names the offending value and says how to fix it.

The CLI turns these into one line on stderr and an exit code, never a traceback.
"""

from __future__ import annotations


class DipError(Exception):
    """Base class: something the user can act on."""

    exit_code = 1


class InputError(DipError):
    """Bad input or usage: missing/unreadable files, bad option values, too large an image."""

    exit_code = 2


class FitError(DipError):
    """The restoration failed while running (diverged, device error)."""

    exit_code = 1


class Interrupted(DipError):
    """Ctrl-C: a checkpoint was saved and the run can be resumed."""

    exit_code = 130
