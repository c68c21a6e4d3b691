"""One exception family with messages a user can act on."""

from __future__ import annotations


class BncheckError(Exception):
    """A problem with the input or the invocation; the CLI prints it and exits 2."""


class InputError(BncheckError):
    """The path is missing, unreadable, or not a model bncheck understands."""


class FormatError(BncheckError):
    """The file is recognised but malformed: truncated, corrupt, or inconsistent."""


class IntegrityError(FormatError):
    """A checksum does not match: the bytes on disk are not the bytes TensorFlow wrote."""


class ConfigError(BncheckError):
    """Invalid configuration, in a file or on the command line."""


class UnsafeFileError(InputError):
    """Loading the file with its framework would run code it carries (a pickle naming ``os.system``): refused,
    whatever else it holds."""
