"""Write a text file atomically: a temporary file in the same folder, then a rename.

A reader never sees half a file, and a failed write leaves the old file as it was. Used for
snapshots (``inventory collect -o``), report and plan files, and policy files edited in place
(``suggest --write``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from service.errors import InputError


class OutputFileError(InputError):
    """An output file could not be written (the message names the file and why)."""


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), keeping the old file's permissions."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                                         dir=path.parent if str(path.parent) else ".")
    except OSError as exc:
        raise OutputFileError(f"{path}: cannot write the file ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException as exc:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise OutputFileError(f"{path}: cannot write the file ({exc.strerror})") from None
        raise
