"""vault_auth_method against an in-memory Vault: enabled when missing, tuned only where it differs, never replaced."""

import pytest

from fake_vault import LOGIN, SYSTEM_TTL, FakeVault, connect


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.enable('kubernetes-lab', 'kubernetes', default_lease_ttl=3600, description='lab')
    return server


def test_a_missing_mount_is_enabled_with_its_settings(run_module, server):
    args = dict(path='approle-ci', type='approle', description='CI', default_lease_ttl='1h', token_type='service', **LOGIN)
    checked = run_module('vault_auth_method', check_mode=True, diff=True, **args)
    assert checked.changed and checked['type'] == 'approle' and checked['accessor'] is None
    assert checked['diff']['before'] == {}
    assert checked['diff']['after'] == dict(path='approle-ci', type='approle', description='CI', default_lease_ttl=3600,
                                            token_type='service')
    assert server.writes == []
    assert run_module('vault_auth_method', **args).changed
    assert server.writes == [('POST', 'sys/auth/approle-ci', dict(
        type='approle', description='CI', config=dict(default_lease_ttl=3600, token_type='service')))]
    again = run_module('vault_auth_method', **args)
    assert not again.changed and again['tuned'] == [] and again['accessor'] == 'auth_approle_1234'
    assert len(server.writes) == 1


def test_only_the_settings_that_differ_are_tuned(run_module, server):
    args = dict(path='kubernetes-lab', default_lease_ttl='60m', max_lease_ttl='24h', description='lab',
                audit_non_hmac_request_keys=['b', 'a', 'a'], **LOGIN)
    checked = run_module('vault_auth_method', check_mode=True, diff=True, **args)
    assert checked.changed and checked['tuned'] == ['audit_non_hmac_request_keys', 'max_lease_ttl']
    assert checked['diff']['before']['max_lease_ttl'] == SYSTEM_TTL and checked['diff']['after']['max_lease_ttl'] == 86400
    assert server.writes == []
    run_module('vault_auth_method', **args)
    assert server.writes == [('POST', 'sys/auth/kubernetes-lab/tune',
                              dict(max_lease_ttl=86400, audit_non_hmac_request_keys=['a', 'b']))]
    assert not run_module('vault_auth_method', **args).changed


def test_absent_disables_once(run_module, server):
    result = run_module('vault_auth_method', path='kubernetes-lab', state='absent', **LOGIN)
    assert result.changed and result['type'] is None
    assert not run_module('vault_auth_method', path='kubernetes-lab', state='absent', **LOGIN).changed
    assert server.writes == [('DELETE', 'sys/auth/kubernetes-lab', None)]


@pytest.mark.parametrize('args, message', [
    (dict(path='kubernetes-lab', type='approle'), 'auth/kubernetes-lab is a kubernetes mount, not approle: disable it first'),
    (dict(path='new-mount'), 'type is required to enable an auth method at auth/new-mount'),
    (dict(path='kubernetes-lab', max_lease_ttl='1x'), "max_lease_ttl: '1x' is not a duration"),
    (dict(path='/'), 'path (or type) is required'),
])
def test_bad_input_fails_naming_it(run_module, server, args, message):
    result = run_module('vault_auth_method', **dict(LOGIN, **args))
    assert result.failed and message in result.msg
    assert server.writes == []


def test_a_server_sealed_after_reading_fails_before_writing(run_module, server, monkeypatch):
    read = server.answer

    def seal_after_reads(method, path, body=None):
        if method not in ('GET', 'LIST'):
            raise AssertionError('a write reached a sealed server')
        found = read(method, path, body)
        server.sealed = path.endswith('/tune')
        return found
    monkeypatch.setattr(server, 'answer', seal_after_reads)
    result = run_module('vault_auth_method', path='kubernetes-lab', max_lease_ttl='1h', **LOGIN)
    assert result.failed and 'is sealed: unseal it first' in result.msg
