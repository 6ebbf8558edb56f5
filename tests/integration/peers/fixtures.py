"""pytest fixtures for the real peers.  In a conftest.py (or a test module):

    pytest_plugins = ["peers.fixtures"]          # tests/integration/conftest.py

or ``from peers.fixtures import kdc, winbind  # noqa: F401``.

* ``kdc`` / ``winbind``: one instance per test session (cheap tests that do
  not change the peer).  ``winbind`` is restarted/resumed if an earlier test
  left it stopped or paused.
* ``fresh_kdc`` / ``fresh_winbind``: a private instance per test, for tests
  that recreate the database, rekey, stop winbindd, change permissions...
  (start-up costs about 0.1 s for the KDC and 0.6 s for winbindd here).
"""

import os
import shutil

import pytest

from .kdc import Kdc
from .winbind import NSS_WRAPPER, Winbind


def _need(*progs):
    missing = [p for p in progs if not shutil.which(p)]
    if missing:
        pytest.fail(f"missing programs {missing}: install the packages listed in "
                    "/work/shared/testenv/NOTES.md")


def _need_winbind():
    _need("winbindd", "wbinfo", "pdbedit", "net")
    if os.geteuid() != 0:
        pytest.skip("a private winbindd needs root")
    if not any(os.path.exists(os.path.join(d, NSS_WRAPPER))
               for d in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu",
                         "/usr/lib64", "/usr/lib")):
        pytest.fail("libnss_wrapper.so not found: apt-get install libnss-wrapper")


@pytest.fixture(scope="session")
def kdc():
    _need("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
    with Kdc() as k:
        yield k


@pytest.fixture
def fresh_kdc():
    _need("krb5kdc", "kdb5_util", "kadmin.local", "kinit", "kvno")
    with Kdc() as k:
        yield k


@pytest.fixture(scope="session")
def _winbind_session():
    _need_winbind()
    with Winbind() as w:
        yield w


@pytest.fixture
def winbind(_winbind_session):
    w = _winbind_session
    if w.running():
        w.resume()
    else:
        w.start()
    yield w


@pytest.fixture
def fresh_winbind():
    _need_winbind()
    with Winbind() as w:
        yield w
