"""The lab talosctl's calls: how a dial that never completes is handled, how a node's error comes back,
and `health`'s checks under their own caps (a clock that moves only when slept on)."""

import argparse
import socket

import pytest

from castle_lab.talos import API_PORT, cli, client
from castle_lab.talos import health as health_module
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


# ------------------------------------------------------------------ health: per-check caps, IP addresses only

class Clock:
    """A monotonic clock that moves only when slept on."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class OneNode:
    insecure = False

    def targets(self):
        return ['10.5.0.2']


def health_args(**changes):
    found = dict(control_plane_nodes=['10.5.0.2'], worker_nodes=['10.5.0.3'], init_node=None, wait_timeout=1200.0)
    found.update(changes)
    return argparse.Namespace(**found)


def stubbed_checks(failing):
    """Talos's checks, descriptions and caps, with assertions that pass except `failing`'s, which never does."""
    def make(description):
        def assertion(health):
            if description == failing:
                raise health_module.CheckFailed('still waiting')
        return assertion
    return [(description, make(description), cap) for description, dummy, cap in health_module.CHECKS]


@pytest.mark.parametrize('failing, cap', [('etcd to be healthy', 300), ('no diagnostics', 60),
                                          ('all k8s nodes to report ready', 600)])
def test_health_stops_at_the_first_check_past_its_own_cap(capsys, failing, cap):
    clock = Clock()
    rc = health_module.run_health(OneNode(), health_args(), clock=clock, sleep=clock.sleep,
                                  checks=stubbed_checks(failing))
    assert rc == 1
    assert cap <= clock.now - 1000.0 < cap + 1  # its own cap, well inside --wait-timeout's 20 minutes
    err = capsys.readouterr().err.splitlines()
    assert err[0] == 'discovered nodes: ["10.5.0.2" "10.5.0.3"]'
    assert err[-3:] == ['waiting for {0}: ...'.format(failing), 'waiting for {0}: still waiting'.format(failing),
                        'healthcheck error: rpc error: code = DeadlineExceeded desc = context deadline exceeded']
    later = [d for d, dummy, dummy in health_module.CHECKS]
    later = later[later.index(failing) + 1:]
    assert not [line for line in err if any(line.startswith('waiting for ' + name) for name in later)]


def test_health_ends_at_wait_timeout_when_it_comes_first(capsys):
    clock = Clock()
    rc = health_module.run_health(OneNode(), health_args(wait_timeout=30.0), clock=clock, sleep=clock.sleep,
                                  checks=stubbed_checks('etcd to be healthy'))
    assert rc == 1 and 30 <= clock.now - 1000.0 < 31


def test_health_takes_ip_addresses_only_and_one_node(capsys):
    rc = health_module.run_health(OneNode(), health_args(worker_nodes=['worker-1']), checks=[])
    assert rc == 1
    assert capsys.readouterr().err == ('healthcheck error: rpc error: code = Unknown desc = '
                                       'ParseAddr("worker-1"): unable to parse IP\n')

    class TwoNodes(OneNode):
        def targets(self):
            return ['10.5.0.2', '10.5.0.3']
    assert health_module.run_health(TwoNodes(), health_args(), checks=[]) == 1
    assert capsys.readouterr().err == 'command "health" is not supported with multiple nodes\n'


def test_health_progress_goes_to_stderr_with_ok_and_skip(capsys):
    def skipped(health):
        raise health_module.Skip()
    checks = [('etcd to be healthy', lambda health: None, 300), ('kube-proxy to report ready', skipped, 300)]
    assert health_module.run_health(OneNode(), health_args(), checks=checks) == 0
    out = capsys.readouterr()
    assert out.out == ''
    assert out.err.splitlines()[1:] == ['waiting for etcd to be healthy: ...', 'waiting for etcd to be healthy: OK',
                                        'waiting for kube-proxy to report ready: ...',
                                        'waiting for kube-proxy to report ready: SKIP']


# ------------------------------------------------------------------ errors of a call through an endpoint

class Targets:
    def __init__(self, nodes, insecure=False):
        self.nodes = nodes
        self.insecure = insecure

    def targets(self):
        return self.nodes


def failing(error):
    def action(node):
        raise error
    return action


def test_a_nodes_error_through_the_endpoint_is_a_multierror_even_for_one_node():
    with pytest.raises(cli.Failure) as caught:
        cli.each_node(Targets(['10.5.0.2']), 'executing bootstrap', failing(RpcError('AlreadyExists', 'etcd data')))
    assert str(caught.value) == ('error executing bootstrap: 1 error occurred:\n\t* 10.5.0.2: rpc error: '
                                 'code = AlreadyExists desc = etcd data\n\n')
    with pytest.raises(cli.Failure) as caught:
        cli.each_node(Targets(['10.5.0.2', '10.5.0.3']), 'getting version', failing(RpcError('Unknown', 'x')))
    assert str(caught.value).startswith('error getting version: 2 errors occurred:\n\t* 10.5.0.2: rpc error: '
                                        'code = Unknown desc = x\n\t* 10.5.0.3: ')


def test_a_call_that_reached_no_node_and_a_maintenance_call_fail_plainly():
    unreachable = RpcError('Unavailable', 'connection error: desc = "transport: ..."', whole_call=True)
    with pytest.raises(cli.Failure) as caught:
        cli.each_node(Targets(['10.5.0.2']), 'getting version', failing(unreachable))
    assert str(caught.value) == 'error getting version: rpc error: code = Unavailable desc = connection error: ' \
        'desc = "transport: ..."'
    with pytest.raises(cli.Failure) as caught:
        cli.each_node(Targets(['10.5.0.2'], insecure=True), 'applying new configuration',
                      failing(RpcError('Unimplemented', 'nope')))
    assert str(caught.value) == 'error applying new configuration: rpc error: code = Unimplemented desc = nope'


def test_bootstrap_refuses_more_than_one_node():
    with pytest.raises(cli.Failure) as caught:
        cli.single_node(Targets(['10.5.0.2', '10.5.0.3']), 'bootstrap')
    assert str(caught.value) == 'command "bootstrap" is not supported with multiple nodes'
    cli.single_node(Targets(['10.5.0.2']), 'bootstrap')


def test_flags_may_stand_between_a_resource_type_and_its_id(monkeypatch, capsys):
    """cobra takes flags anywhere on the line, so `get <type> -n <node> <id>` names the id."""
    seen = []
    monkeypatch.setattr(cli, 'cmd_get', lambda args: seen.append((args.type, args.id, args.nodes)) or 0)
    assert cli.main(['get', 'addresses', '-n', '10.0.0.1', 'ens18/10.0.0.1/24']) == 0
    assert cli.main(['get', 'addresses', 'ens18/10.0.0.1/24', '-n', '10.0.0.1']) == 0
    assert seen == [('addresses', 'ens18/10.0.0.1/24', ['10.0.0.1'])] * 2
    with pytest.raises(SystemExit) as exited:
        cli.main(['get', 'addresses', 'one', '-n', '10.0.0.1', 'two'])
    assert exited.value.code == 1 and capsys.readouterr().err.startswith('Error: ')
