"""Text tables and paragraphs for a given width, as plain strings (styles painted by a :class:`Terminal`).

A row is [name, *cells, codes]. :func:`arrange` takes the first layout that prints a name of up to NAME_KEPT
characters whole: every column on one line with long titles; with short titles; without the optional columns
(one that says the same on every row); with the codes wrapped over lines (a code is never cut); last,
stacked: the name and codes on the row's first line, the cells indented below. A name longer than its column
is shortened in the middle. Paragraphs wrap at spaces only, with a hanging indent. No line ends in blanks.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from .terminal import Terminal

GAP = "  "
NAME_KEPT = 40  # names up to this long are printed whole whenever a layout allows
MIN_NAME = 8

Cell = tuple[str, str]  # (text, style); "\n" in the text starts another line of the cell
Codes = tuple[Cell, ...]  # the last cell of a row: codes, wrapped between codes


@dataclass(frozen=True)
class Column:
    """A column's titles and the width of its widest cell."""

    title: str
    width: int
    right: bool = False
    short: str = ""  # the title used when the long one does not fit
    optional: bool = False  # left out when the row would not fit on one line otherwise

    def titled(self, short: bool) -> tuple[str, int]:
        title = self.short if short and self.short else self.title
        return title, max(self.width, len(title))


@dataclass(frozen=True)
class Slot:
    """A column placed on one line of a row."""

    cell: int | None  # position in the row; None: an empty indent
    width: int
    title: str = ""
    right: bool = False


Placed = Sequence[tuple[int, str]]  # the lines of a cell in its column: (visible length, painted text)


@dataclass(frozen=True)
class Layout:
    bands: tuple[tuple[Slot, ...], ...]  # the lines of one row (before its cells wrap), each a run of slots
    codes_width: int

    @property
    def width(self) -> int:
        return max(map(_span, self.bands))

    def shows(self, position: int) -> bool:
        return any(slot.cell == position for band in self.bands for slot in band)

    def header(self, term: Terminal) -> list[str]:
        titles = [_join(band, [((len(s.title), term.paint(s.title, "bold")),) for s in band]) for band in self.bands]
        return [line for band in titles for line in band] + [term.rule * self.width]

    def lines(self, name: Cell, cells: Sequence[Cell], codes: Codes, term: Terminal) -> list[str]:
        """The text lines of the row [name, *cells, codes]."""
        if len(self.bands) == 1 and len(codes) == 1 and not term.styles:
            line = self._one_line(name[0], cells, codes[0][0], term)
            if line is not None:
                return [line]
        last = len(cells) + 1
        out = []
        for band in self.bands:
            placed: list[Placed] = []
            for slot in band:
                if slot.cell is None:
                    placed.append(())
                elif slot.cell == 0:
                    text = shorten(name[0], slot.width, term.ellipsis)
                    placed.append(((len(text), term.paint(text, name[1])),))
                elif slot.cell == last:
                    placed.append(self._codes(codes, term))
                else:
                    text, style = cells[slot.cell - 1]
                    lines = text.split("\n") if "\n" in text else (text,)
                    placed.append([(len(line), term.paint(line, style)) for line in lines])
            out += _join(band, placed)
        return out

    def _one_line(self, name: str, cells: Sequence[Cell], code: str, term: Terminal) -> str | None:
        """The row on one line without escapes (the usual row, piped): None when a cell has lines of its own."""
        parts = []
        for slot in self.bands[0]:
            if slot.cell == 0:
                text = name if len(name) <= slot.width else shorten(name, slot.width, term.ellipsis)
            elif slot.cell == len(cells) + 1:
                text = code
            else:
                text = cells[slot.cell - 1][0]
                if "\n" in text:
                    return None
            parts.append(text.rjust(slot.width) if slot.right else text.ljust(slot.width))
        return GAP.join(parts).rstrip()

    def _codes(self, codes: Codes, term: Terminal) -> Placed:
        """The codes, as many to a line as the column takes (at least one)."""
        if len(codes) == 1:
            code, style = codes[0]
            return ((len(code), term.paint(code, style)),)
        lines: list[tuple[int, str]] = []
        for code, style in codes:
            if lines and lines[-1][0] + 1 + len(code) <= self.codes_width:
                length, painted = lines[-1]
                lines[-1] = (length + 1 + len(code), f"{painted} {term.paint(code, style)}")
            else:
                lines.append((len(code), term.paint(code, style)))
        return lines


def _join(band: Sequence[Slot], placed: Sequence[Placed]) -> list[str]:
    """The lines of the ``placed`` cells in the slots of ``band``: padded, GAP apart, without trailing blanks."""
    out = []
    for i in range(max(map(len, placed))):
        parts = []
        for slot, lines in zip(band, placed, strict=True):
            length, painted = lines[i] if i < len(lines) else (0, "")
            pad = " " * (slot.width - length)
            parts.append(pad + painted if slot.right else painted + pad)
        out.append(GAP.join(parts).rstrip())
    return out


def shorten(name: str, width: int, ellipsis: str = "…") -> str:
    """``name`` in ``width`` characters: its start and its (distinctive) end around an ellipsis."""
    if len(name) <= width:
        return name
    if width <= len(ellipsis):
        return name[:width]
    tail = (width - len(ellipsis)) // 2
    return name[: width - len(ellipsis) - tail] + ellipsis + (name[-tail:] if tail else "")


def _slots(cells: Sequence[Column], short: bool, drop_optional: bool) -> list[Slot]:
    """The cell columns (row positions 1..n) with their long or ``short`` titles."""
    slots = []
    for position, column in enumerate(cells, 1):
        if not (drop_optional and column.optional):
            title, width = column.titled(short)
            slots.append(Slot(position, width, title, column.right))
    return slots


def _span(slots: Sequence[Slot]) -> int:
    return sum(slot.width for slot in slots) + len(GAP) * (len(slots) - 1)


def arrange(width: int, name: Column, cells: Sequence[Column], codes: Column, widest_code: int) -> Layout:
    """The layout of rows [name, *cells, codes] in ``width`` columns (see the module docstring)."""
    keep = min(name.width, NAME_KEPT)
    least_codes = max(widest_code, len(codes.title))  # one code a line
    last = len(cells) + 1
    steps = ((False, False, codes.width), (True, False, codes.width), (True, True, codes.width))
    for short, drop, codes_width in (*steps, (True, True, least_codes)):
        middle = _slots(cells, short, drop)
        room = width - _span(middle) - codes_width - 2 * len(GAP)
        if room >= keep:
            name_width = min(name.width, room)
            codes_width = min(codes.width, codes_width + room - name_width)  # spare room: fewer code lines
            band = (Slot(0, name_width, name.title), *middle, Slot(last, codes_width, codes.title))
            return Layout((band,), codes_width)
    # stacked: name and codes on the first line, the cells indented below
    codes_width = min(codes.width, max(least_codes, width - len(GAP) - keep))
    name_width = min(name.width, max(width - len(GAP) - codes_width, MIN_NAME))
    first = (Slot(0, name_width, name.title), Slot(last, codes_width, codes.title))
    below = _slots(cells, short=False, drop_optional=False)
    if len(GAP) + _span(below) > width:
        below = _slots(cells, short=True, drop_optional=False)
    return Layout((first, (Slot(None, 0), *below)), codes_width)


def words(text: str, style: str = "", sep: str = " ") -> list[tuple[str, str, str]]:
    """``text`` as (separator, word, style) items for :func:`paragraph`; ``sep`` goes before the first word
    (empty: glued to what comes before). A lone symbol ("-", "~") stays with the word after it."""
    items: list[tuple[str, str, str]] = []
    pending = ""
    for word in text.split(" "):
        if not word:
            continue
        if len(word) == 1 and not word.isalnum() and not pending:
            pending = word
            continue
        items.append((sep if not items else " ", f"{pending} {word}" if pending else word, style))
        pending = ""
    if pending:
        items.append((sep if not items else " ", pending, style))
    return items


def paragraph(
    items: Iterable[tuple[str, str, str]], width: int, term: Terminal, first: str = "", indent: str = "  "
) -> Iterator[str]:
    """Lines of (separator, word, style) items filled to ``width``, the first line starting with ``first``, the
    others with ``indent``. Lines break only at a non-empty separator, which the break drops; a word longer
    than a line stands alone on it, whole. Runs of one style are painted once."""
    runs: list[list[str]] = [[first, ""]]  # [text, style] of one line
    length, started = len(first), False
    for sep, word, style in items:
        if not started:
            sep, started = "", True
        elif sep and length + len(sep) + len(word) > width:
            yield _painted(runs, term)
            runs, length, sep = [[indent, ""]], len(indent), ""
        if runs[-1][1] == style:
            _extend(runs, sep + word, style)
        else:
            _extend(runs, sep, "")
            _extend(runs, word, style)
        length += len(sep) + len(word)
    if started:
        yield _painted(runs, term)


def _extend(runs: list[list[str]], text: str, style: str) -> None:
    if runs[-1][1] == style:
        runs[-1][0] += text
    else:
        runs.append([text, style])


def _painted(runs: list[list[str]], term: Terminal) -> str:
    return "".join(term.paint(text, style) for text, style in runs).rstrip()
