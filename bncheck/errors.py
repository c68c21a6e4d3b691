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


class BatchNormStateError(Exception):
    """A training-time guard found BN state that a saved model would be judged broken for (``bncheck.keras``,
    ``bncheck.torch``, ``bncheck.tf1``). Not a BncheckError: no input file is at fault. ``findings`` are the
    :class:`~bncheck.findings.Finding` objects the message lists, with the codes and fixes of ``bncheck inspect``."""

    def __init__(self, message: str, findings: list) -> None:
        super().__init__(message)
        self.findings = findings
