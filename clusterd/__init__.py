"""clusterd: the BQN cluster daemon (membership, election, configuration sync)."""

import sys
from ctypes import util as _ctypes_util

__version__ = "0.1.0"


def _import_asyncssh() -> None:
    """Import asyncssh asking only the linker cache for liboqs.

    asyncssh looks for liboqs (for sntrup761) with ``ctypes.util.find_library``,
    which, when the library is not in the linker cache, compiles and links a
    probe with gcc and ld: 40 ms of CPU at every daemon start and every
    ``clusterd`` command, 10 CPU-seconds for a 256-server cluster. A liboqs
    installed as a library is in the cache, so sntrup761 is still found.
    """
    cached = getattr(_ctypes_util, "_findSoname_ldconfig", None)
    if cached is None or "asyncssh" in sys.modules:
        import asyncssh  # noqa: F401
        return
    original = _ctypes_util.find_library
    _ctypes_util.find_library = cached
    try:
        import asyncssh  # noqa: F401
    finally:
        _ctypes_util.find_library = original


_import_asyncssh()
