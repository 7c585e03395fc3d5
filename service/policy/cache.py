"""A cache of validated policy sets for one-shot commands, keyed by everything they depend on.

``scopekeeper check`` usually runs again and again on an unchanged policy folder (CI, pre-commit),
and validating it (YAML, JSON Schema, patterns, the overlap check) costs more than evaluating a
typical fleet. A set that loaded without problems is pickled under a key made of the folder as
named (positions in findings name its files), every file's name and bytes, the loader's own code
and schema files and the versions of the YAML readers and of Python. So any change to the
policies or to the code that validates them misses the cache and loads afresh; problems are
never cached, so a broken set is reported in full every time. The set is stored with its
compiled matchers and agent index (``PolicySet.compiled``), which spares building them on a hit
(about a third of loading a typical set; the regular expressions themselves are compiled again
as they are unpickled), but never with the verdicts a run made (``CompiledPolicy.__getstate__``).

The cache folder is ``$SCOPEKEEPER_CACHE_DIR`` (empty: no cache) or ``$XDG_CACHE_HOME/scopekeeper``
(``~/.cache/scopekeeper``). Entries are read only from a folder the current user owns and that no
one else may write to (a pickle runs code when loaded). A cache that cannot be read or written is
ignored: it is only ever a shortcut.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import sys
import tempfile
from functools import cache
from pathlib import Path

from connectors.integrations import BUILTIN_INTEGRATIONS
from service.policy.loader import load_policy_set, policy_files, set_version
from service.policy.model import PolicySet

CACHE_ENV = "SCOPEKEEPER_CACHE_DIR"
_FORMAT = b"policy-set-cache/1"
_SUFFIX = ".pickle"


def cache_directory() -> Path | None:
    """Where cached sets live, or None when caching is turned off."""
    configured = os.environ.get(CACHE_ENV)
    if configured is not None:
        return Path(configured) if configured else None
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "scopekeeper" / "policy-sets"


@cache
def _code_fingerprint() -> bytes:
    """The loader's code and schemas, the YAML readers' versions, Python's and the integrations."""
    import ruamel.yaml
    import yaml

    digest = hashlib.sha256(_FORMAT)
    here = Path(__file__).resolve().parent
    root = here.parent.parent
    outside = [root / "service" / "config.py", root / "service" / "findings" / "model.py",
               root / "connectors" / "integrations.py"]  # durations, finding types, scopes
    for path in [*sorted([*here.glob("*.py"), *here.glob("*.json")]), *outside]:
        digest.update(f"{path.name}\0".encode())
        digest.update(path.read_bytes())
    digest.update(repr((sys.version, yaml.__version__, ruamel.yaml.__version__,
                        sorted(BUILTIN_INTEGRATIONS))).encode())
    return digest.digest()


def _key(directory: Path) -> tuple[str, str] | None:
    """(cache key, the set's version) for the folder as it is now; None when unreadable."""
    try:
        contents = [(path.name, path.read_bytes()) for path in policy_files(directory)]
    except OSError:
        return None  # the loader reports the unreadable file
    version = set_version(contents)
    digest = hashlib.sha256(_code_fingerprint())
    digest.update(f"\0{directory}\0{version}".encode())
    return digest.hexdigest(), version


def _private(folder: Path) -> bool:
    try:
        info = folder.stat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def _read(entry: Path) -> PolicySet | None:
    if not _private(entry.parent):
        return None
    try:
        with entry.open("rb") as handle:
            loaded = pickle.load(handle)
    except FileNotFoundError:
        return None
    except Exception:  # a damaged or outdated entry is a miss, and is replaced
        return None
    return loaded if isinstance(loaded, PolicySet) else None


def _write(entry: Path, policy_set: PolicySet) -> None:
    """Write the entry under a temporary name, then rename it: readers see all of it or none."""
    temporary = None
    try:
        entry.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _private(entry.parent):
            return
        _ = policy_set.compiled  # pickled with the set (see the module's docstring)
        data = pickle.dumps(policy_set, protocol=pickle.HIGHEST_PROTOCOL)
        fd, temporary = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=entry.parent)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, entry)
    except (OSError, pickle.PicklingError):
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)


def load_policy_set_cached(directory: Path) -> PolicySet:
    """:func:`~service.policy.loader.load_policy_set`, answered from the cache when the folder,
    its files and the loader are all unchanged since a load that succeeded."""
    folder = cache_directory()
    keyed = _key(directory) if folder is not None and directory.is_dir() else None
    if folder is None or keyed is None:
        return load_policy_set(directory)
    key, version = keyed
    entry = folder / f"{key}{_SUFFIX}"
    cached = _read(entry)
    if cached is not None and cached.version == version:
        return cached
    policy_set = load_policy_set(directory)
    if policy_set.version == version:  # not when a file changed while it was being loaded
        _write(entry, policy_set)
    return policy_set
