"""vault_ssh_role against an in-memory Vault: the whole role compared as the server reads it back, written only when it differs."""

import pytest

from fake_vault import LOGIN, FakeVault, connect

ARGS = dict(LOGIN, mount='ssh-fleet', name='gateway', allowed_users=['gateway'], default_user='gateway',
            allowed_extensions=['permit-port-forwarding'], default_extensions={'permit-port-forwarding': ''}, ttl='1h')
SENT = dict(key_type='ca', allowed_users='gateway', default_user='gateway', allowed_extensions='permit-port-forwarding',
            default_extensions={'permit-port-forwarding': ''}, allowed_critical_options='', default_critical_options={},
            ttl=3600, max_ttl=0, not_before_duration=30, allow_user_certificates=True, allow_host_certificates=False,
            allow_user_key_ids=False, key_id_format='', algorithm_signer='default')


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.engines.mount('ssh-fleet', 'ssh')
    return server


def test_a_role_is_written_whole_once(run_module, server):
    checked = run_module('vault_ssh_role', check_mode=True, diff=True, **ARGS)
    assert checked.changed and checked['diff']['before'] == {} and checked['diff']['after']['ttl'] == 3600
    assert checked['role']['allowed_users'] == ['gateway'] and server.writes == []
    assert run_module('vault_ssh_role', **ARGS).changed
    assert server.writes == [('POST', 'ssh-fleet/roles/gateway', SENT)]
    same = dict(ARGS, ttl='60m', allowed_users=['gateway', 'gateway'], not_before_duration='30s')
    again = run_module('vault_ssh_role', diff=True, **same)
    assert not again.changed and again['diff']['before'] == again['diff']['after']
    assert len(server.writes) == 1


def test_a_changed_field_rewrites_the_role_with_a_diff(run_module, server):
    run_module('vault_ssh_role', **ARGS)
    longer = run_module('vault_ssh_role', diff=True, **dict(ARGS, ttl='2h', allowed_users=['gateway', 'ops']))
    assert longer.changed
    assert longer['diff']['before']['ttl'] == 3600 and longer['diff']['after']['ttl'] == 7200
    assert longer['diff']['before']['allowed_users'] == ['gateway'] and longer['diff']['after']['allowed_users'] == ['gateway', 'ops']
    assert server.writes[-1] == ('POST', 'ssh-fleet/roles/gateway', dict(SENT, ttl=7200, allowed_users='gateway,ops'))
    fewer = run_module('vault_ssh_role', **dict(ARGS, default_extensions={}))
    assert fewer.changed and server.writes[-1][2]['default_extensions'] == {}


def test_a_field_left_out_counts_with_its_default(run_module, server):
    server.engines.ssh_roles[('ssh-fleet', 'gateway')] = dict(server.engines.ssh_role('POST', 'x', SENT), max_ttl=14400)
    result = run_module('vault_ssh_role', diff=True, **ARGS)
    assert result.changed and result['diff']['before']['max_ttl'] == 14400 and result['diff']['after']['max_ttl'] == 0
    assert server.writes == [('POST', 'ssh-fleet/roles/gateway', SENT)]


def test_absent_deletes_once(run_module, server):
    run_module('vault_ssh_role', **ARGS)
    args = dict(LOGIN, mount='ssh-fleet', name='gateway', state='absent')
    checked = run_module('vault_ssh_role', check_mode=True, diff=True, **args)
    assert checked.changed and checked['diff']['after'] == {} and checked['role'] is None and len(server.writes) == 1
    assert run_module('vault_ssh_role', **args).changed
    assert not run_module('vault_ssh_role', **args).changed
    assert server.writes[1:] == [('DELETE', 'ssh-fleet/roles/gateway', None)]


@pytest.mark.parametrize('args, message', [
    (dict(mount='nowhere'), 'mount: nowhere is not enabled; enable it first'),
    (dict(mount='kv'), 'mount: kv is a kv mount, not ssh'),
    (dict(ttl='2h', max_ttl='1h'), 'ttl (7200s) is longer than max_ttl (3600s)'),
    (dict(ttl='soon'), "ttl: 'soon' is not a duration"),
    (dict(allowed_users=['a,b']), "allowed_users: 'a,b' holds a comma"),
    (dict(allow_user_certificates=False), 'allow_user_certificates or allow_host_certificates must be true'),
    (dict(name='a/b'), "name 'a/b': a role name is not empty and has no \"/\""),
    (dict(allowed_users=None), 'state is present but all of the following are missing: allowed_users'),
])
def test_bad_input_fails_naming_it(run_module, server, args, message):
    given = {name: value for name, value in dict(ARGS, **args).items() if value is not None}
    result = run_module('vault_ssh_role', **given)
    assert result.failed and message in result.msg
    assert server.writes == []
