"""The chaos client (tests/tools/chaos.py) for a bounded time against the
gateway under test (the ASan build in scripts/test's second pass): random
split, pipelined, abandoned and reset traffic with every invariant checked
after every step, then fds back to baseline and a clean SIGTERM exit.

AG_CHAOS_SECONDS sets the duration (default 25: scripts/test runs the suite
twice); AG_CHAOS_SEED replays a run (the seed is printed, and is in the
failure message)."""

import os
import pathlib
import sys

from peers.fixtures import _need_winbind

TOOLS = pathlib.Path(__file__).resolve().parents[1] / "tools"
sys.path.insert(0, str(TOOLS))

import chaos  # noqa: E402


def test_chaos(tmp_path, capsys):
    _need_winbind()
    seconds = float(os.environ.get("AG_CHAOS_SECONDS", "25"))
    seed = int(os.environ.get("AG_CHAOS_SEED") or int.from_bytes(os.urandom(4), "big"))
    with capsys.disabled():
        print("\nchaos: seed=%d seconds=%g (AG_CHAOS_SEED=%d replays)" % (seed, seconds, seed))
    saved = dict(os.environ)
    try:
        n = chaos.run(seconds, seed, tmp_path, log=lambda m: None)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    assert n["steps"] > 0 and n["checks"] == n["steps"]
    assert n["exit_status"] == 0
    assert n["fds_end"] <= n["fds_baseline"]
