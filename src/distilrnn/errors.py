"""The errors a user can cause, as one family.

Every message names the file, line, setting or folder to fix. The CLI prints a
`DistilrnnError` as one line and exits non-zero; any other exception is a bug and keeps its
traceback. Each class also derives from the built-in error it refines (`ValueError`,
`FileNotFoundError`), so `except ValueError` in a caller's code keeps working.
"""

from __future__ import annotations


class DistilrnnError(Exception):
    """Base of every error a user of distilrnn can cause and fix."""

    exit_code = 1


class ConfigError(DistilrnnError, ValueError):
    """A bad configuration key or value; the message names the setting."""

    exit_code = 2


class DataError(DistilrnnError, ValueError):
    """Bad task data; the message names the file and, where there is one, the line."""


class TeacherError(DistilrnnError, ValueError):
    """A teacher that does not fit the task, or cannot be loaded."""


class StudentError(DistilrnnError, ValueError):
    """A student checkpoint that is missing, corrupt or does not fit what it is used with."""


class AugmentError(DistilrnnError, ValueError):
    """Transfer-set generation cannot run as configured (e.g. no POS tagger installed)."""


class BundleError(DistilrnnError, ValueError):
    """A bundle that cannot be written or read: corrupt, of another version, or incomplete."""


class RunFolderError(DistilrnnError, ValueError):
    """A run folder that lacks a finished stage, or is of a format this version cannot use."""


class MissingFileError(DistilrnnError, FileNotFoundError):
    """A file or folder the user named does not exist."""
