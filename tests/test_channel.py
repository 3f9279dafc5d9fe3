"""The sync channel between the host side and the container's stages (real sockets)."""

from __future__ import annotations

from pyrun.channel import Channel


def test_a_peer_that_died_with_our_message_unread_is_still_heard():
    """Stage 1 reports its error and exits while the host's "cgroup-done" is
    still unread in its queue: unix(7) datagram sockets then answer the
    host's next read with ECONNRESET before the error message. The host
    must read the error, not die on "internal error: ConnectionResetError"."""
    host, child = Channel.pair()
    child.send("error", message="setns(network): Invalid argument (EINVAL)")
    host.send("cgroup-done")
    child.close()
    msg = host.recv()
    assert msg == {"kind": "error", "message": "setns(network): Invalid argument (EINVAL)"}
    assert host.recv() is None
    host.close()
