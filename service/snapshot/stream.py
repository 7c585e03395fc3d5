"""Walking the top level of one big JSON object, with chosen array fields read in batches.

Only the top level is parsed here; every value and array item is decoded by a C decoder on a
sliding buffer, so memory holds one chunk plus the item being decoded. Errors name
``file:line:column``. What an item must look like is not known here: a *plain-batch reader*
(see ``items.py``) is handed the whole items that lie in the buffer as one JSON list.
"""

from __future__ import annotations

import json
import json.scanner
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sized
from typing import Any, TextIO

import msgspec

from service.errors import SnapshotError

PlainReader = Callable[[str], Sized]
"""Reads a JSON list of items in one go into a batch of as many records; raises
:class:`NotPlain` (or a msgspec error) when any of them needs the per-item check."""

_WHITESPACE = re.compile(r"[ \t\n\r]*").match
_AFTER_ITEM = re.compile(r"[ \t\n\r]*([,\]])[ \t\n\r]*").match
_CHUNK_CHARS = 1 << 20
_CUT_ATTEMPTS = 8
_END_PROBES = 16
_CUT_CANDIDATES = 64
_MAX_VALUE_CHARS = 64 << 20
_PARTIAL_CHARS = 64 << 10


def _array_end(buf: str, pos: int) -> tuple[int, re.Match[str]] | None:
    """Where the array read from ``pos`` seems to end in ``buf``: ``}`` then ``]`` then ``,``
    or ``}``; returns (the end of its last item, the match of its ``]``), or None.

    Only ``]`` characters are looked at (found by a C scan; few, as items rarely hold lists),
    and only the first :data:`_END_PROBES` of them: a regular expression searching from every
    ``}`` cost more than the batch's own decoding checks.
    """
    at = buf.find("]", pos)
    for _ in range(_END_PROBES):
        if at < 0:
            return None
        brace = at - 1
        while brace > pos and buf[brace] in " \t\n\r":
            brace -= 1
        if brace >= pos and buf[brace] == "}":
            separator = _AFTER_ITEM(buf, brace + 1)
            if separator is not None and buf[separator.end():separator.end() + 1] in (",", "}"):
                return brace + 1, separator
        at = buf.find("]", at + 1)
    return None


class NotPlain(Exception):
    """An item of a batch needs the per-item check (the batch is read again item by item)."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


class JsonStream:
    """Walks one JSON object, yielding its fields; chosen array fields come in batches.

    Values and raw items are decoded by the standard library's C decoder (``raw_decode``);
    plainly valid batches by the field's plain-batch reader.
    """

    def __init__(self, handle: TextIO, origin: str, *,
                 plain_batches: Mapping[str, PlainReader] | None = None):
        self.handle = handle
        self._origin = origin
        self._plain_batches = plain_batches or {}
        decoder = json.JSONDecoder(parse_constant=_refuse_constant)
        self._decode = decoder.raw_decode
        self._scan = json.scanner.make_scanner(decoder)
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._consumed = 0
        """Characters of the file before the buffer."""

    def members(self, *, streamed: Collection[str]
                ) -> Iterator[tuple[str, int | None, Any, bool]]:
        """``(field, None, value, False)`` per field; ``(field, start, items, checked)`` per batch
        of items of a streamed array field, ``start`` being the index of the batch's first item:
        raw JSON items, or (``checked``) what the field's plain-batch reader made of them."""
        self._skip_whitespace()
        self._expect("{", "an inventory object")
        self._skip_whitespace()
        if self._peek() == "}":
            self._pos += 1
        else:
            seen: set[str] = set()
            more = True
            while more:
                self._skip_whitespace()
                field = self._field_name(seen)
                self._skip_whitespace()
                if field in streamed and self._peek() == "[":
                    yield from self._items(field)
                else:
                    yield field, None, self._value(), False
                self._skip_whitespace()
                more = self._separator("}", "a field")
        self._skip_whitespace()
        if self._peek():
            raise self._error("invalid JSON: extra data after the inventory object")

    def _field_name(self, seen: set[str]) -> str:
        if self._peek() != '"':
            raise self._error("invalid JSON: expected a field name in double quotes")
        at = self._pos
        field = self._value()
        if field in seen:
            raise self._error(f"field {field!r} appears twice", at=at)
        seen.add(field)
        self._skip_whitespace()
        self._expect(":", "':' after a field name")
        return field

    def _items(self, field: str) -> Iterator[tuple[str, int, Sized, bool]]:
        self._pos += 1
        self._skip_whitespace()
        if self._peek() == "]":
            self._pos += 1
            return
        index = 0
        while True:
            batch, checked, closed = self._items_in_buffer(field)
            if batch:
                yield field, index, batch, checked
                index += len(batch)
            if closed:
                return
            # One item with every check: at a chunk boundary, or where the input is broken.
            if not self._eof and len(self._buf) - self._pos < _PARTIAL_CHARS:
                self._fill()  # the rest is most likely the start of an item: complete it first
            self._skip_whitespace()
            yield field, index, [self._value()], False
            index += 1
            self._skip_whitespace()
            if not self._separator("]", f"an item of {field}"):
                return
            self._skip_whitespace()

    def _items_in_buffer(self, field: str) -> tuple[Sized, bool, bool]:
        """The items that lie whole in the buffer: (items, checked, whether ``]`` was reached).

        Plainly valid items are read in one call of the field's plain-batch reader (checked);
        otherwise each item is decoded by itself (raw), stopping at anything unusual, which
        :meth:`_items` then reads with every check and error message.
        """
        read_plain = self._plain_batches.get(field)
        if read_plain is not None:
            found = self._plain_batch(read_plain)
            if found is not None:
                return found[0], True, found[1]
        batch, closed = self._raw_items_in_buffer()
        return batch, False, closed

    def _plain_batch(self, read_plain: PlainReader) -> tuple[Sized, bool] | None:
        """The buffer's whole items up to the last one that ends in it, read by ``read_plain``;
        None when they are not all plainly valid (the per-item reader then decides).

        An item ends with ``}`` followed by ``,`` or ``]``. A ``}`` inside an item, or in a later
        field's array, can look the same; then the text up to it is not a list of whole JSON
        values, the decoder says so, and the cut moves back to the middle of what is left. A cut
        that decodes is a real item boundary: the decoder read the same characters as the whole
        document's parser would. Where the array seems to end in the buffer (``}`` ``]`` then
        ``,`` or ``}``), that place is tried first, which spares the search at every array's end.
        """
        buf, pos = self._buf, self._pos
        ending = _array_end(buf, pos)
        if ending is not None:
            cut, separator = ending
            try:
                return read_plain(f"[{buf[pos:cut]}]"), self._cut(separator)
            except (msgspec.ValidationError, NotPlain, RecursionError):
                return None  # RecursionError: nested too deeply, the per-item read says so
            except msgspec.DecodeError:
                pass  # a list of objects inside an item, not the array's end
        end = len(buf)
        attempts = _CUT_ATTEMPTS
        for _ in range(_CUT_CANDIDATES):
            cut = buf.rfind("}", pos, end) + 1
            if cut <= pos:
                return None
            end = cut - 1
            separator = _AFTER_ITEM(buf, cut)
            if separator is None:
                continue
            attempts -= 1
            if attempts < 0:
                return None
            try:
                records = read_plain(f"[{buf[pos:cut]}]")
            except (msgspec.ValidationError, NotPlain, RecursionError):
                return None
            except msgspec.DecodeError:
                end = pos + (cut - pos) // 2  # past the array's end, or inside an item
                continue
            return records, self._cut(separator)
        return None

    def _cut(self, separator: re.Match[str]) -> bool:
        """Move past an item's separator; True when it was the array's ``]``."""
        self._pos = separator.end()
        return separator.group(1) == "]"

    def _raw_items_in_buffer(self) -> tuple[list[Any], bool]:
        """Decode the raw items that lie whole in the buffer, in one tight loop; stops (without
        consuming) at anything unusual. Returns the items and whether ``]`` was reached."""
        buf, pos, scan, after_item = self._buf, self._pos, self._scan, _AFTER_ITEM
        size = len(buf)
        batch: list[Any] = []
        while True:
            try:
                value, end = scan(buf, pos)
            except (StopIteration, ValueError, RecursionError):
                break
            separator = after_item(buf, end) if end < size else None
            if separator is None:
                break
            batch.append(value)
            pos = separator.end()
            if separator.group(1) == "]":
                self._pos = pos
                return batch, True
        self._pos = pos
        return batch, False

    def _separator(self, closing: str, after: str) -> bool:
        """Consume ``,`` (True: more follows) or ``closing`` (False); anything else is an error."""
        char = self._peek()
        if char == ",":
            self._pos += 1
            return True
        if char == closing:
            self._pos += 1
            return False
        raise self._error(f"invalid JSON: expected ',' or '{closing}' after {after}")

    def _value(self) -> Any:
        while True:
            try:
                value, end = self._decode(self._buf, self._pos)
            except json.JSONDecodeError as exc:
                if self._eof or len(self._buf) - self._pos > _MAX_VALUE_CHARS:
                    raise self._error(f"invalid JSON: {exc.msg}", at=exc.pos) from None
            except ValueError as exc:
                raise self._error(f"invalid JSON: {exc}") from None
            except RecursionError:
                raise self._error("invalid JSON: nested too deeply") from None
            else:
                if end < len(self._buf) or self._eof:
                    self._pos = end
                    return value
            self._fill()

    def _peek(self) -> str:
        if self._pos >= len(self._buf) and not self._eof:
            self._fill()
        return self._buf[self._pos:self._pos + 1]

    def _expect(self, char: str, what: str) -> None:
        if self._peek() != char:
            raise self._error(f"invalid JSON: expected {what}")
        self._pos += 1

    def _skip_whitespace(self) -> None:
        while True:
            self._pos = _WHITESPACE(self._buf, self._pos).end()
            if self._pos < len(self._buf) or self._eof:
                return
            self._fill()

    def _fill(self) -> None:
        """Drop what was consumed and append the next chunk."""
        try:
            more = self.handle.read(_CHUNK_CHARS)
        except UnicodeDecodeError as exc:
            raise SnapshotError(f"{self._origin}: not UTF-8 text ({exc.reason})") from None
        except OSError as exc:
            raise SnapshotError(f"{self._origin}: cannot read snapshot ({exc.strerror})") from None
        self._consumed += self._pos
        self._buf = self._buf[self._pos:] + more
        self._pos = 0
        self._eof = not more

    def _error(self, message: str, *, at: int | None = None) -> SnapshotError:
        at = self._pos if at is None else at
        if at >= len(self._buf) and self._eof and message.startswith("invalid JSON"):
            message = "invalid JSON: unexpected end of file"
        try:
            lines, column = self._lines_before_buffer()
        except (OSError, ValueError):
            return SnapshotError(f"{self._origin}: character {self._consumed + at + 1}: "
                                 f"{message}")
        newlines = self._buf.count("\n", 0, at)
        if newlines:
            lines, column = lines + newlines, at - self._buf.rfind("\n", 0, at) - 1
        else:
            column += at
        return SnapshotError(f"{self._origin}:{lines + 1}:{column + 1}: {message}")

    def _lines_before_buffer(self) -> tuple[int, int]:
        """(newlines, characters after the last one) in the file before the buffer.

        Counted only for an error message, by reading that part of the file again: counting
        every chunk's lines as it went by cost several percent of a read.
        """
        lines = column = 0
        remaining = self._consumed
        if remaining:
            self.handle.seek(0)
        while remaining:
            part = self.handle.read(min(remaining, _CHUNK_CHARS))
            if not part:
                break
            remaining -= len(part)
            newlines = part.count("\n")
            if newlines:
                lines, column = lines + newlines, len(part) - part.rfind("\n") - 1
            else:
                column += len(part)
        return lines, column
