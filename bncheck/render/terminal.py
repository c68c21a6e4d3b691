"""Where the table goes: its width, whether it takes colour, and the escape codes of each style.

The decisions are Rich's (``rich.console.Console``): width from COLUMNS, else the terminal of
stdin/stdout/stderr, else 80; colour only on a terminal (or FORCE_COLOR / TTY_COMPATIBLE), none
under NO_COLOR (bold and dim stay) or TERM=dumb. Rich is imported only when the stream may be a
terminal: a pipe or a file cannot take colour, and its width needs no Rich.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import IO

MIN_WIDTH = 20
RESET = "\x1b[0m"


@dataclass(frozen=True)
class Terminal:
    """Width, character set and style escapes of one output stream."""

    width: int = 80
    encoding: str = "utf-8"
    styles: dict[str, str] = field(default_factory=dict)  # style name -> SGR prefix; empty: no escapes

    def paint(self, text: str, style: str) -> str:
        prefix = self.styles.get(style) if style and text else None
        return f"{prefix}{text}{RESET}" if prefix else text

    @property
    def unicode(self) -> bool:
        return self.encoding.lower().replace("-", "").startswith("utf")

    def encodable(self, text: str) -> str:
        """``text`` with what the stream's encoding cannot write replaced (``?``), not a crash."""
        return text if self.unicode else text.encode(self.encoding, "replace").decode(self.encoding)

    @property
    def ellipsis(self) -> str:
        return "…" if self.unicode else "..."

    @property
    def rule(self) -> str:
        return "─" if self.unicode else "-"


def _may_be_terminal(stream: IO[str]) -> bool:
    if os.environ.get("TTY_COMPATIBLE") == "1" or "FORCE_COLOR" in os.environ:
        return True
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def _plain_width() -> int:
    """Rich's width for a stream that is not a terminal: COLUMNS, else any standard stream's terminal, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit():
        return int(columns)
    for fd in (0, 1, 2):
        try:
            return os.get_terminal_size(fd).columns or 80
        except (AttributeError, ValueError, OSError):
            continue
    return 80


def detect(stream: IO[str], styles: tuple[str, ...]) -> Terminal:
    """The terminal ``stream`` writes to, with the escape codes of ``styles`` (Rich style names) if it takes colour."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    if not _may_be_terminal(stream):
        return Terminal(max(_plain_width(), MIN_WIDTH), encoding)
    from rich.console import COLOR_SYSTEMS, Console
    from rich.style import Style

    console = Console(file=stream)
    width = max(console.width, MIN_WIDTH)
    if console.color_system is None or console.legacy_windows:  # legacy Windows consoles take no escapes
        return Terminal(width, encoding)
    system = COLOR_SYSTEMS[console.color_system]
    prefixes = {}
    for name in styles:
        style = Style.parse(name).without_color if console.no_color else Style.parse(name)
        prefix = style.render("\0", color_system=system).partition("\0")[0]
        if prefix:
            prefixes[name] = prefix
    return Terminal(width, encoding, prefixes)
