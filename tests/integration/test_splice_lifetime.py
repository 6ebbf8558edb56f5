"""The zero-copy pump's handles and the memory that holds them.

A response body above AG_SPLICE_MIN goes socket to socket through a splice
pump with two libuv poll handles. Closing a handle is not immediate: libuv
keeps it on its loop's closing queue until the end of that loop turn. The
pump of the next response on the same client connection may start within
the same turn (the previous pump finished inside the read that brought its
head, and libuv's read loop went on to read the next response, all already
in the socket): a pump that re-initialised the handles still closing put
them on the closing queue a second time, and the daemon aborted on libuv's
assertion `uv__finish_close: !(handle->flags & UV_HANDLE_CLOSED)` (the
chaos client's finding, issue 14).

Since issue 16 a pump makes and closes no handle per body: its pipe and the
sockets' ends (a dup and a poll handle each) are kept while the connection
and the upstream live, so both bodies here are spliced, in one turn, on the
same pieces.
"""

import os
import signal

from harness.origin import ScriptedOrigin, pattern
from harness.rawhttp import get_request

# Each body: the first read (64 KiB with the head) leaves more than
# AG_SPLICE_MIN (256 KiB) for the pump.
BODY = 400_000


def _response(body):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body


def test_two_spliced_responses_in_one_loop_turn(make_gateway, origin):
    """The origin's two responses are all in the gateway's upstream socket
    before the gateway reads a byte of them (the gateway is stopped with
    SIGSTOP while the origin sends): the first pump finishes inside the
    read of the first head, the second request goes out on the pooled
    connection, and libuv's read loop brings the second head at once, whose
    pump would start in the same loop turn. Both bodies arrive whole and
    the daemon keeps serving; before the fix it aborted."""
    gw = make_gateway(workers=1, log_level="debug")
    bodies = [pattern(BODY), bytes(reversed(pattern(BODY)))]

    def stop_gateway():
        os.kill(gw.proc.pid, signal.SIGSTOP)

    up = ScriptedOrigin(_response(bodies[0]) + _response(bodies[1]), hold=True,
                        before_reply=stop_gateway).start()
    c = gw.client(timeout=10)
    try:
        c.send(get_request(up.url("/first")) + get_request(up.url("/second")))
        sent = up.sent.wait(10)
    finally:
        os.kill(gw.proc.pid, signal.SIGCONT)
    try:
        assert sent, "the origin could not queue both responses"
        for i, body in enumerate(bodies):
            r = c.recv_response(timeout=10)
            assert r.status == 200 and r.body == body, (i, r)
        # a later loop turn: the daemon still serves (it aborted at the end
        # of the turn that ran both pumps)
        with gw.client(timeout=10) as c2:
            r = c2.request(get_request(origin.url("/after")))
        assert r.status == 200, (r, gw.logs_tail(3000))
        # the scenario: the first body went through a pump that finished in
        # that turn, and so did the second: a pump closes no handle when it
        # ends (its pipe and the sockets' ends are kept for the next body),
        # so the second one runs on the same pieces in the same turn
        assert gw.error_log.count("event=splice_done status=0") == 2, gw.logs_tail(3000)
    finally:
        up.stop()
