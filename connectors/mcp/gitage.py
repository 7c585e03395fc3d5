"""How old a line of a config file is: the git author time of its last change, else the mtime.

``git blame`` answers this for one file per process, which costs a process per file. Here the
files of one repository are answered together: one ``git log -p -U0 --first-parent --reverse``
over just those paths streams every change to them, oldest first, and replaying the hunks gives,
for each file, its content at ``HEAD`` and the author time of each line's last change (what
``git blame`` reports on a linear history; on a merged branch a line dates from the merge that
brought it onto the first-parent line). The working file is then compared with that content:
lines not committed yet, files git does not track, files outside any repository and
repositories git refuses to read (no commits, unsafe ownership, git missing) get the file's
modification time instead, and say so (``source == "mtime"``).

Git runs without the caller's ``GIT_*`` environment, with literal pathspecs, without pager,
textconv, external diff or fsmonitor, so a repository's own configuration cannot run commands
or change the output format. Diff text stays in memory and is never logged.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from difflib import SequenceMatcher
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

PATHS_PER_CALL = 400
_HUNK = re.compile(rb"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_ESCAPES = {b"n": b"\n", b"t": b"\t", b'"': b'"', b"\\": b"\\", b"a": b"\a", b"b": b"\b",
            b"f": b"\f", b"r": b"\r", b"v": b"\v"}


@dataclass(frozen=True, slots=True)
class LineAge:
    at: datetime
    source: Literal["git", "mtime"]


@dataclass(frozen=True, slots=True)
class AgeRequest:
    path: str
    text: str
    """The file's content as parsed, so line numbers agree with the parser's."""
    lines: frozenset[int]
    mtime: datetime


@dataclass(slots=True)
class _History:
    """A file's content at HEAD and the author time of each of its lines."""

    lines: list[bytes] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)


class GitAges:
    """Answers line ages, batching git by repository; ``calls`` counts git processes run."""

    def __init__(self, *, use_git: bool = True, timeout: float = 120.0, git: str = "git"):
        self.use_git = use_git
        self.timeout = timeout
        self.git = git
        self.calls = 0
        self.problems: list[str] = []
        self._roots: dict[Path, Path | None] = {}

    def ages(self, requests: Iterable[AgeRequest]) -> dict[str, dict[int, LineAge]]:
        requests = list(requests)
        result = {r.path: {line: LineAge(r.mtime, "mtime") for line in r.lines}
                  for r in requests}
        if not self.use_git:
            return result
        by_root: dict[Path, list[tuple[AgeRequest, str]]] = {}
        for request in requests:
            located = self._in_repository(request.path)
            if located is not None:
                by_root.setdefault(located[0], []).append((request, located[1]))
        for root, members in sorted(by_root.items()):
            histories = self._histories(root, sorted({rel for _, rel in members}))
            for request, rel in members:
                history = histories.get(rel)
                if history is not None:
                    _apply(history, request, result[request.path])
        return result

    def _in_repository(self, path: str) -> tuple[Path, str] | None:
        resolved = Path(path).resolve()
        root = self._root_of(resolved.parent)
        return None if root is None else (root, resolved.relative_to(root).as_posix())

    def _root_of(self, folder: Path) -> Path | None:
        if folder in self._roots:
            return self._roots[folder]
        if (folder / ".git").exists():
            root: Path | None = folder
        else:
            root = None if folder.parent == folder else self._root_of(folder.parent)
        self._roots[folder] = root
        return root

    def _histories(self, root: Path, rels: list[str]) -> dict[str, _History]:
        histories: dict[str, _History] = {}
        for start in range(0, len(rels), PATHS_PER_CALL):
            output = self._log(root, rels[start:start + PATHS_PER_CALL])
            if output is None:
                return {}
            try:
                histories.update(replay(output))
            except (ValueError, IndexError):
                self._problem(root, "git log printed a diff this reader does not understand")
                return {}
        return histories

    def _log(self, root: Path, rels: list[str]) -> bytes | None:
        command = [
            self.git, "-c", "core.quotePath=false", "-c", "core.fsmonitor=false",
            "--no-pager", "-C", str(root), "log", "--first-parent",
            "--diff-merges=first-parent", "--reverse", "--root", "-p", "-U0",
            "--inter-hunk-context=0", "--no-renames", "--no-ext-diff", "--no-textconv",
            "--no-color", "--no-relative", "--src-prefix=a/", "--dst-prefix=b/",
            "--no-show-signature", "--format=%x00%at", "--", *rels,
        ]
        env = {key: value for key, value in os.environ.items() if not key.startswith("GIT_")}
        env.update(GIT_LITERAL_PATHSPECS="1", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0",
                   LC_ALL="C")
        self.calls += 1
        try:
            done = subprocess.run(command, capture_output=True, env=env, timeout=self.timeout,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return self._problem(root, f"git could not run ({type(exc).__name__})")
        if done.returncode != 0:
            first = done.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
            return self._problem(root, f"git log failed ({first[0] if first else done.returncode})")
        return done.stdout

    def _problem(self, root: Path, message: str) -> None:
        """Record why git gave no ages for ``root`` (the caller falls back to mtimes)."""
        text = f"{root}: {message}; line ages there use file modification times"
        self.problems.append(text)
        log.warning("%s", text)
        return None


def replay(output: bytes) -> dict[str, _History]:
    """Replay ``git log -p -U0 --reverse --format=%x00%at`` output into per-file histories."""
    files: dict[str, _History] = {}
    lines = output.split(b"\n")
    stamp = 0
    index = 0
    old_path: str | None = None
    while index < len(lines):
        line = lines[index]
        index += 1
        if line.startswith(b"\x00"):
            stamp = int(line[1:])
        elif line.startswith(b"diff --git "):
            old_path = None
        elif line.startswith(b"--- "):
            old_path = _diff_path(line[4:], b"a/")
        elif line.startswith(b"+++ "):
            new_path = _diff_path(line[4:], b"b/")
            if new_path is None:  # deleted
                files.pop(old_path or "", None)
                index = _skip_hunks(lines, index)
                continue
            before = files.get(old_path or "", _History()) if old_path else _History()
            files[new_path], index = _apply_hunks(before, lines, index, stamp)
        elif line.startswith(b"Binary files "):
            files.pop(old_path or "", None)
    return files


def _apply_hunks(before: _History, lines: list[bytes], index: int,
                 stamp: int) -> tuple[_History, int]:
    after = _History()
    position = 0  # lines of ``before`` consumed so far
    while index < len(lines) and lines[index].startswith(b"@@ "):
        hunk = _HUNK.match(lines[index])
        if hunk is None:
            raise ValueError("unexpected hunk header in git output")
        old_start, old_count = int(hunk.group(1)), int(hunk.group(2) or 1)
        new_count = int(hunk.group(4) or 1)
        keep_until = old_start if old_count == 0 else old_start - 1
        after.lines += before.lines[position:keep_until]
        after.stamps += before.stamps[position:keep_until]
        position = keep_until
        index += 1
        old_left, new_left = old_count, new_count
        while old_left or new_left:
            body = lines[index]
            index += 1
            marker, text = body[:1], body[1:]
            if marker == b"+":
                after.lines.append(text)
                after.stamps.append(stamp)
                new_left -= 1
            elif marker == b"-":
                position += 1
                old_left -= 1
            elif marker == b" ":
                after.lines.append(before.lines[position])
                after.stamps.append(before.stamps[position])
                position += 1
                old_left -= 1
                new_left -= 1
            elif marker != b"\\":  # "\ No newline at end of file" changes no line
                raise ValueError("unexpected line in a git hunk")
        while index < len(lines) and lines[index].startswith(b"\\"):
            index += 1
    after.lines += before.lines[position:]
    after.stamps += before.stamps[position:]
    return after, index


def _skip_hunks(lines: list[bytes], index: int) -> int:
    while index < len(lines) and lines[index][:1] in (b"@", b"-", b"+", b" ", b"\\"):
        index += 1
    return index


def _diff_path(text: bytes, prefix: bytes) -> str | None:
    if text == b"/dev/null":
        return None
    if text.startswith(b'"'):
        text = _unquote(text)
    text = text.removesuffix(b"\t")  # git adds a tab after names that contain a space
    return text.removeprefix(prefix).decode("utf-8", "surrogateescape")


def _unquote(text: bytes) -> bytes:
    """Undo git's C-style quoting of an unusual file name."""
    body = text[1:text.rindex(b'"')]
    out = bytearray()
    index = 0
    while index < len(body):
        char = body[index:index + 1]
        if char != b"\\":
            out += char
            index += 1
        elif body[index + 1:index + 2].isdigit():
            out.append(int(body[index + 1:index + 4], 8))
            index += 4
        else:
            out += _ESCAPES.get(body[index + 1:index + 2], body[index + 1:index + 2])
            index += 2
    return bytes(out)


def _apply(history: _History, request: AgeRequest, ages: dict[int, LineAge]) -> None:
    """Give each wanted line of the working file its HEAD line's time, if it has one."""
    working = [line.rstrip(b"\r") for line in request.text.encode().split(b"\n")]
    committed = [line.rstrip(b"\r") for line in history.lines]
    if committed:
        committed[0] = committed[0].removeprefix(b"\xef\xbb\xbf")
    if request.text.endswith("\n"):
        working.pop()
    stamp_of_working: dict[int, int] = {}
    if working == committed:
        stamp_of_working = dict(enumerate(history.stamps, start=1))
    else:
        matcher = SequenceMatcher(None, committed, working, autojunk=False)
        for block in matcher.get_matching_blocks():
            for offset in range(block.size):
                stamp_of_working[block.b + offset + 1] = history.stamps[block.a + offset]
    for line in request.lines:
        if line in stamp_of_working:
            ages[line] = LineAge(datetime.fromtimestamp(stamp_of_working[line], tz=UTC), "git")
