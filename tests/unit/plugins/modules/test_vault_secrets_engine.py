"""vault_secrets_engine against an in-memory Vault: enabled when missing, tuned only where it differs, never remounted."""

import pytest

from fake_vault import LOGIN, SYSTEM_TTL, FakeVault, connect


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.engines.mount('ssh-lab', 'ssh', description='lab', default_lease_ttl=3600)
    return server


def test_a_missing_mount_is_enabled_with_its_settings(run_module, server):
    args = dict(path='ssh-fleet', type='ssh', description='fleet', max_lease_ttl='24h', **LOGIN)
    checked = run_module('vault_secrets_engine', check_mode=True, diff=True, **args)
    assert checked.changed and checked['type'] == 'ssh' and checked['mount'] is None
    assert checked['diff'] == dict(before={}, after=dict(path='ssh-fleet', type='ssh', description='fleet', max_lease_ttl=86400))
    assert server.writes == []
    made = run_module('vault_secrets_engine', **args)
    assert made.changed and made['mount']['type'] == 'ssh' and made['mount']['config']['max_lease_ttl'] == 86400
    assert server.writes == [('POST', 'sys/mounts/ssh-fleet', dict(type='ssh', description='fleet',
                                                                   config=dict(max_lease_ttl=86400)))]
    again = run_module('vault_secrets_engine', **dict(args, max_lease_ttl='1440m'))
    assert not again.changed and again['tuned'] == [] and again['mount']['accessor'] == 'ssh_5678'
    assert len(server.writes) == 1


def test_kv_v2_is_kv_with_version_2_and_options_compare_as_strings(run_module, server):
    assert not run_module('vault_secrets_engine', path='kv', type='kv-v2', **LOGIN).changed
    assert not run_module('vault_secrets_engine', path='kv', type='kv', options={'version': 2}, **LOGIN).changed
    made = run_module('vault_secrets_engine', path='kv-apps', type='kv-v2', **LOGIN)
    assert made.changed and made['mount']['options'] == {'version': '2'}
    assert server.writes == [('POST', 'sys/mounts/kv-apps', dict(type='kv', config={}, options={'version': '2'}))]


def test_only_the_settings_that_differ_are_tuned(run_module, server):
    args = dict(path='ssh-lab', default_lease_ttl='60m', max_lease_ttl='2h', description='lab', **LOGIN)
    checked = run_module('vault_secrets_engine', check_mode=True, diff=True, **args)
    assert checked.changed and checked['tuned'] == ['max_lease_ttl']
    assert checked['diff']['before']['max_lease_ttl'] == SYSTEM_TTL and checked['diff']['after']['max_lease_ttl'] == 7200
    assert checked['diff']['before']['default_lease_ttl'] == checked['diff']['after']['default_lease_ttl'] == 3600
    assert server.writes == []
    tuned = run_module('vault_secrets_engine', **args)
    assert server.writes == [('POST', 'sys/mounts/ssh-lab/tune', dict(max_lease_ttl=7200))]
    assert tuned['mount']['config']['max_lease_ttl'] == 7200
    assert not run_module('vault_secrets_engine', **args).changed


def test_absent_disables_once(run_module, server):
    checked = run_module('vault_secrets_engine', check_mode=True, path='ssh-lab', state='absent', **LOGIN)
    assert checked.changed and checked['mount']['type'] == 'ssh' and server.writes == []
    result = run_module('vault_secrets_engine', path='ssh-lab', state='absent', **LOGIN)
    assert result.changed and result['type'] is None and result['mount'] is None
    assert not run_module('vault_secrets_engine', path='ssh-lab', state='absent', **LOGIN).changed
    assert server.writes == [('DELETE', 'sys/mounts/ssh-lab', None)]


@pytest.mark.parametrize('args, message', [
    (dict(path='ssh-lab', type='kv'), 'type: ssh-lab is a ssh mount, not kv: disable it first'),
    (dict(path='kv', type='ssh'), 'type: kv is a kv mount, not ssh'),
    (dict(path='new-mount'), 'type is required to enable a secrets engine at new-mount'),
    (dict(path='ssh-lab', max_lease_ttl='1x'), "max_lease_ttl: '1x' is not a duration"),
    (dict(path='/'), 'path (or type) is required'),
])
def test_bad_input_fails_naming_it(run_module, server, args, message):
    result = run_module('vault_secrets_engine', **dict(LOGIN, **args))
    assert result.failed and message in result.msg
    assert server.writes == []
