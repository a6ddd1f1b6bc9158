"""A TF Serving model base path: which folders are versions, and how a new
version appears in one.

TF Serving takes a folder whose name is a plain non-negative decimal number
as a version; anything else there (`.incoming-…`, `1.5`, `²`) is not one, for
the server, the registry and rollback alike. A version is published whole: it
is copied under a hidden name and renamed into place, so a server polling the
base path sees it complete or not at all, however slow the copy; a copy that
fails leaves nothing a server or the registry would take for a version.
Version numbers are the push time in seconds (as TFX's Pusher numbers them),
or one above the newest folder, chosen under a lock on the base path: two
pushes in the same second, from any process, never get the same number.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import tempfile
import time
from typing import Iterable, Iterator, List, Tuple

_VERSION = re.compile(r"[0-9]+")
_STAGING_PREFIX = ".incoming-"


def is_version(name: str) -> bool:
    """Whether a folder name is a version number (ASCII digits only: `str.isdigit`
    also accepts `²`, which `int` refuses)."""
    return _VERSION.fullmatch(name.strip("/")) is not None


def versions(names: Iterable[str]) -> List[int]:
    """The version numbers among folder names, ascending."""
    return sorted(int(n.strip("/")) for n in names if is_version(n))


def local_versions(base: str) -> List[int]:
    """The version folders of a local base path; none if it does not exist."""
    return versions(os.listdir(base)) if os.path.isdir(base) else []


@contextlib.contextmanager
def _locked(base: str) -> Iterator[None]:
    """Holds a lock on the base path folder itself, so nothing but versions
    is left in it (released by the kernel however the holder ends)."""
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def publish(source: str, base: str) -> Tuple[int, str]:
    """Copies SavedModel folder `source` into local base path `base` as a new
    version, whole or not at all: (version, its folder)."""
    os.makedirs(base, exist_ok=True)
    with _locked(base):
        for name in os.listdir(base):  # left by a push that was killed: no one else is publishing
            if name.startswith(_STAGING_PREFIX):
                shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        version = max([int(time.time())] + [v + 1 for v in local_versions(base)])
        staging = tempfile.mkdtemp(prefix=f"{_STAGING_PREFIX}{version}-", dir=base)
        target = os.path.join(base, str(version))
        try:
            copied = os.path.join(staging, "model")
            shutil.copytree(source, copied)
            os.chmod(copied, 0o755)
            os.rename(copied, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return version, target
