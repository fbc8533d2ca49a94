"""vault_approle against an in-memory Vault: the fields given written where they differ, the role ID returned, secret
IDs issued (never in check mode, never in a diff or message) and destroyed by accessor."""

import json

import pytest

from fake_vault import LOGIN, FakeVault, connect

ARGS = dict(LOGIN, name='fleet-railiance01', token_policies=['fleet-sign'], token_ttl='10m', secret_id_ttl='0')


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.enable('approle', 'approle')
    return server


def test_a_role_is_written_once_and_its_role_id_returned(run_module, server):
    checked = run_module('vault_approle', check_mode=True, diff=True, **ARGS)
    assert checked.changed and checked['role_id'] is None and server.writes == []
    assert checked['diff'] == dict(before={}, after=dict(token_policies=['fleet-sign'], token_ttl=600, secret_id_ttl=0))
    made = run_module('vault_approle', **ARGS)
    assert made.changed and made['role_id'] == 'role-id-approle-fleet-railiance01'
    assert server.writes == [('POST', 'auth/approle/role/fleet-railiance01',
                              dict(token_policies=['fleet-sign'], token_ttl=600, secret_id_ttl=0))]
    again = run_module('vault_approle', check_mode=True, **dict(ARGS, token_ttl='600s', token_policies=['fleet-sign'] * 2))
    assert not again.changed and again['role_id'] == made['role_id'] and 'secret_id' not in again
    wider = run_module('vault_approle', diff=True, name='fleet-railiance01', token_bound_cidrs=['10.200.10.0/24'], **LOGIN)
    assert wider.changed and wider['diff'] == dict(before=dict(token_bound_cidrs=[]), after=dict(token_bound_cidrs=['10.200.10.0/24']))
    assert server.writes[-1] == ('POST', 'auth/approle/role/fleet-railiance01', dict(token_bound_cidrs=['10.200.10.0/24']))
    assert server.engines.approle_roles[('approle', 'fleet-railiance01')]['token_ttl'] == 600, 'fields left out are kept'


def test_a_secret_id_is_issued_on_every_run_but_never_in_check_mode_nor_in_the_diff(run_module, server):
    run_module('vault_approle', **ARGS)
    checked = run_module('vault_approle', check_mode=True, diff=True, issue_secret_id=True, **ARGS)
    assert checked.changed and 'secret_id' not in checked and checked['msg'] == 'check mode: no secret ID issued'
    assert len(server.writes) == 1
    first = run_module('vault_approle', diff=True, issue_secret_id=True, secret_id_metadata={'host': 'railiance01'}, **ARGS)
    assert first.changed and first['secret_id'] == 'secret-id-1' and first['secret_id_accessor'] == 'accessor-1'
    assert 'secret-id-1' not in json.dumps(dict(first, secret_id=None))
    assert first['diff']['after']['secret_id'] == '<new secret ID>'
    assert server.writes[-1] == ('POST', 'auth/approle/role/fleet-railiance01/secret-id', {'metadata': '{"host": "railiance01"}'})
    second = run_module('vault_approle', issue_secret_id=True, **ARGS)
    assert second.changed and second['secret_id'] == 'secret-id-2'
    assert server.writes[-1] == ('POST', 'auth/approle/role/fleet-railiance01/secret-id', {})


def test_old_secret_ids_are_destroyed_by_accessor_once(run_module, server):
    run_module('vault_approle', **ARGS)
    old = run_module('vault_approle', issue_secret_id=True, **ARGS)['secret_id_accessor']
    rotate = dict(ARGS, issue_secret_id=True, destroy_secret_id_accessors=[old, 'accessor-unknown'])
    checked = run_module('vault_approle', check_mode=True, **rotate)
    assert checked['destroyed_secret_id_accessors'] == [old] and old in server.engines.secret_ids
    rotated = run_module('vault_approle', **rotate)
    assert rotated['destroyed_secret_id_accessors'] == [old] and rotated['secret_id_accessor'] != old
    assert list(server.engines.secret_ids) == [rotated['secret_id_accessor']]
    assert server.writes[-1] == ('POST', 'auth/approle/role/fleet-railiance01/secret-id-accessor/destroy',
                                 {'secret_id_accessor': old})
    gone = run_module('vault_approle', destroy_secret_id_accessors=[old], **ARGS)
    assert not gone.changed and gone['destroyed_secret_id_accessors'] == []


def test_absent_deletes_once(run_module, server):
    run_module('vault_approle', **ARGS)
    args = dict(LOGIN, name='fleet-railiance01', state='absent')
    checked = run_module('vault_approle', check_mode=True, **args)
    assert checked.changed and checked['role_id'] is None and len(server.writes) == 1
    assert run_module('vault_approle', **args).changed
    assert not run_module('vault_approle', **args).changed
    assert server.writes[1:] == [('DELETE', 'auth/approle/role/fleet-railiance01', None)]


@pytest.mark.parametrize('args, message', [
    (dict(mount='nowhere'), 'mount: auth/nowhere is not enabled; enable it first (ephemeral.castle.vault_auth_method, type approle)'),
    (dict(mount='token'), 'mount: auth/token is a token mount, not approle'),
    (dict(token_ttl='soon'), "token_ttl: 'soon' is not a duration"),
    (dict(secret_id_num_uses=-1), 'secret_id_num_uses must be 0 or more, not -1'),
    (dict(name='a/b'), "name 'a/b': a role name is not empty and has no \"/\""),
    (dict(state='absent', issue_secret_id=True), 'issue_secret_id and destroy_secret_id_accessors need state=present'),
    (dict(token_type='other'), 'value of token_type must be one of'),
])
def test_bad_input_fails_naming_it(run_module, server, args, message):
    result = run_module('vault_approle', **dict(ARGS, **args))
    assert result.failed and message in result.msg
    assert server.writes == []
