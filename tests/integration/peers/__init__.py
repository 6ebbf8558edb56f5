"""Real peers for integration tests: a throwaway MIT KDC (peers.kdc.Kdc) and a
standalone Samba winbindd (peers.winbind.Winbind).  pytest fixtures live in
peers.fixtures.  See the module docstrings for how to start the gateway so
that it uses them."""

from .accounts import DEFAULT_GROUPS, DEFAULT_USERS  # noqa: F401
from ._util import PeerError  # noqa: F401
from .kdc import Kdc  # noqa: F401
from .winbind import Winbind  # noqa: F401
