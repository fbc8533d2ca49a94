"""vault_kubernetes_auth against an in-memory Vault: config and roles read, compared, then written only where they differ."""

import json

import pytest

from fake_vault import LOGIN, FakeVault, connect

HOST = 'https://10.0.40.10:6443'
CA = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----'
ROLE = dict(name='kaze-runtime', bound_service_account_names=['kaze-runtime'], bound_service_account_namespaces=['kaze'],
            token_policies=['kaze-runtime-read'], token_ttl='1h')
ARGS = dict(LOGIN, mount='kubernetes-lab')


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.enable('kubernetes-lab', 'kubernetes')
    return server


def test_the_config_is_written_once_with_the_reviewer_jwt(run_module, server):
    args = dict(ARGS, kubernetes_host=HOST, kubernetes_ca_cert=CA + '\n', token_reviewer_jwt='jwt-1',
                disable_local_ca_jwt=True)
    checked = run_module('vault_kubernetes_auth', check_mode=True, diff=True, **args)
    assert checked.changed and checked['config_changed'] and checked['diff']['before'] == {'config': {}, 'roles': {}}
    assert checked['diff']['after']['config']['token_reviewer_jwt'] == '<written>'
    assert checked['config'] == dict(kubernetes_host=HOST, kubernetes_ca_cert=CA, disable_local_ca_jwt=True,
                                     token_reviewer_jwt_set=True)
    assert 'jwt-1' not in json.dumps(checked)
    assert server.writes == []
    run_module('vault_kubernetes_auth', **args)
    assert server.writes == [('POST', 'auth/kubernetes-lab/config', dict(
        kubernetes_host=HOST, kubernetes_ca_cert=CA, disable_local_ca_jwt=True, token_reviewer_jwt='jwt-1'))]
    again = run_module('vault_kubernetes_auth', **dict(args, token_reviewer_jwt='jwt-2'))
    assert not again.changed, 'a JWT Vault keeps (and never returns) is not rewritten with on_create'
    rotated = run_module('vault_kubernetes_auth', **dict(args, token_reviewer_jwt='jwt-2', update_reviewer_jwt='always'))
    assert rotated.changed and server.writes[-1][2]['token_reviewer_jwt'] == 'jwt-2'


def test_a_config_change_keeps_the_settings_not_given_and_warns_when_the_jwt_goes(run_module, server):
    server.docs['auth/kubernetes-lab/config'] = dict(kubernetes_host=HOST, kubernetes_ca_cert=CA, issuer='',
                                                     disable_local_ca_jwt=True, token_reviewer_jwt_set=True)
    assert not run_module('vault_kubernetes_auth', **dict(ARGS, kubernetes_host=HOST)).changed
    result = run_module('vault_kubernetes_auth', diff=True, **dict(ARGS, kubernetes_host=HOST, issuer='https://kubernetes'))
    assert result['config_changed'] and result['config']['token_reviewer_jwt_set'] is False
    assert result['diff']['before']['config']['issuer'] == '' and result['diff']['after']['config']['issuer'] == 'https://kubernetes'
    assert server.writes == [('POST', 'auth/kubernetes-lab/config', dict(
        kubernetes_host=HOST, kubernetes_ca_cert=CA, issuer='https://kubernetes', disable_local_ca_jwt=True))]
    assert any('without token_reviewer_jwt' in warning for warning in result['warnings'])


def test_roles_are_written_only_where_a_given_field_differs(run_module, server):
    checked = run_module('vault_kubernetes_auth', check_mode=True, diff=True, roles=[ROLE], **ARGS)
    assert checked.changed and checked['roles_written'] == ['kaze-runtime'] and server.writes == []
    assert checked['diff']['after']['roles']['kaze-runtime']['token_ttl'] == 3600
    run_module('vault_kubernetes_auth', roles=[ROLE], **ARGS)
    assert server.writes == [('POST', 'auth/kubernetes-lab/role/kaze-runtime', dict(
        bound_service_account_names=['kaze-runtime'], bound_service_account_namespaces=['kaze'],
        token_policies=['kaze-runtime-read'], token_ttl=3600))]
    same = dict(ROLE, token_ttl='60m', token_policies=['kaze-runtime-read', 'kaze-runtime-read'])
    assert not run_module('vault_kubernetes_auth', roles=[same], **ARGS).changed
    more = run_module('vault_kubernetes_auth', roles=[{'name': 'kaze-runtime', 'token_policies': ['a', 'b']}], **ARGS)
    assert more['roles_written'] == ['kaze-runtime']
    assert server.writes[-1] == ('POST', 'auth/kubernetes-lab/role/kaze-runtime', {'token_policies': ['a', 'b']})


def test_absent_and_exclusive_delete_roles(run_module, server):
    server.docs['auth/kubernetes-lab/role/old'] = dict(bound_service_account_names=['old'])
    server.docs['auth/kubernetes-lab/role/gone'] = dict(bound_service_account_names=['gone'])
    result = run_module('vault_kubernetes_auth', roles=[{'name': 'gone', 'state': 'absent'}], **ARGS)
    assert result['roles_deleted'] == ['gone'] and result['roles_written'] == []
    exclusive = run_module('vault_kubernetes_auth', check_mode=True, diff=True, roles=[ROLE], exclusive=True, **ARGS)
    assert exclusive['roles_deleted'] == ['old'] and exclusive['diff']['before']['roles'] == {'old': '<present>'}
    assert server.writes == [('DELETE', 'auth/kubernetes-lab/role/gone', None)]


@pytest.mark.parametrize('args, message', [
    (dict(mount='nowhere'), 'mount: auth/nowhere is not enabled; enable it first'),
    (dict(mount='token'), 'mount: auth/token is a token mount, not kubernetes'),
    (dict(roles=[{'name': 'Upper'}]), "roles[0].name 'Upper': a role name is lower case"),
    (dict(roles=[{'name': 'new', 'bound_service_account_names': ['x']}]),
     'roles[0] (new): a new role needs bound_service_account_namespaces'),
    (dict(roles=[ROLE, ROLE]), 'roles[1] (kaze-runtime): the role is listed twice'),
    (dict(roles=[dict(ROLE, token_max_ttl='soon')]), "roles[0] (kaze-runtime).token_max_ttl: 'soon' is not a duration"),
])
def test_bad_input_fails_naming_it_before_any_write(run_module, server, args, message):
    result = run_module('vault_kubernetes_auth', **dict(ARGS, **args))
    assert result.failed and message in result.msg
    assert server.writes == []
