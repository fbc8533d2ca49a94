"""The lab talosctl's calls: how a dial that never completes is handled."""

import argparse
import socket

import pytest

from castle_lab.talos import API_PORT, client
from castle_lab.talos.api import RpcError


def test_a_handshake_that_hangs_fails_the_dial_and_the_call_goes_on_to_the_next_endpoint(monkeypatch):
    monkeypatch.setattr(client, 'CONNECT_TIMEOUT', 0.3)
    silent = socket.socket()
    silent.bind(('127.0.77.1', API_PORT))
    silent.listen()  # accepts connections and never answers a TLS hello, as a node that went down mid-handshake
    try:
        calls = client.Client(argparse.Namespace(nodes=None, endpoints=['127.0.77.1,127.0.77.2']), insecure=True)
        with pytest.raises(RpcError) as caught:
            calls.call('Version')
        assert caught.value.code == 'Unavailable'
        assert caught.value.message.endswith('dial tcp 127.0.77.2:50000: connect: connection refused"')
        assert calls.refused['127.0.77.1'].message.endswith('dial tcp 127.0.77.1:50000: i/o timeout"')
    finally:
        silent.close()
