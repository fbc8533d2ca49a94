"""vault_policy against an in-memory Vault: written only when the text means something else, never in check mode."""

import pytest

from fake_vault import LOGIN, FakeVault, connect

POLICY = 'path "kv/data/app/*" {\n  capabilities = ["read"]\n}\n'
SAME = '# the same, laid out otherwise\npath "kv/data/app/*" { capabilities = ["read", "read"] }'


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.docs['sys/policies/acl/app'] = {'name': 'app', 'policy': POLICY}
    return server


def test_a_new_policy_is_written_as_given_and_check_mode_writes_nothing(run_module, server):
    checked = run_module('vault_policy', check_mode=True, diff=True, name='new', policy=POLICY, **LOGIN)
    assert checked.changed and checked['policy'] == POLICY
    assert checked['diff']['before'] == '' and checked['diff']['after'] == POLICY
    assert server.writes == []
    done = run_module('vault_policy', name='new', policy=POLICY, **LOGIN)
    assert done.changed
    assert server.writes == [('POST', 'sys/policies/acl/new', {'policy': POLICY})]


def test_a_policy_that_means_the_same_is_left_alone(run_module, server):
    result = run_module('vault_policy', diff=True, name='app', policy=SAME, **LOGIN)
    assert not result.changed and result['policy'] == POLICY
    assert result['diff']['before'] == result['diff']['after'] == POLICY
    assert server.writes == []


def test_another_capability_is_a_change_read_from_policy_file(run_module, server, tmp_path):
    other = tmp_path / 'app.hcl'
    other.write_text(POLICY.replace('"read"', '"read", "list"'))
    result = run_module('vault_policy', name='app', policy_file=str(other), **LOGIN)
    assert result.changed
    assert server.writes == [('POST', 'sys/policies/acl/app', {'policy': other.read_text()})]


def test_absent_deletes_once(run_module, server):
    assert run_module('vault_policy', check_mode=True, name='app', state='absent', **LOGIN).changed
    assert server.writes == []
    assert run_module('vault_policy', name='app', state='absent', **LOGIN).changed
    assert run_module('vault_policy', name='app', state='absent', **LOGIN).changed is False
    assert server.writes == [('DELETE', 'sys/policies/acl/app', None)]


@pytest.mark.parametrize('args, message', [
    (dict(name='App', policy=POLICY), "name 'App': a policy name is lower case"),
    (dict(name='root', policy=POLICY), 'name root: the root policy cannot be changed'),
    (dict(name='default', state='absent'), 'name default: this policy cannot be deleted'),
    (dict(name='app', policy='path "a" { capabilities = ["read" }'), 'policy for app is not valid HCL'),
    (dict(name='app', policy='  \n'), 'policy for app is empty'),
    (dict(name='app', policy_file='/nonexistent/app.hcl'), 'policy_file /nonexistent/app.hcl cannot be read'),
])
def test_bad_input_fails_naming_it_before_any_write(run_module, server, args, message):
    result = run_module('vault_policy', **dict(LOGIN, **args))
    assert result.failed and message in result.msg
    assert server.writes == []


def test_a_refused_token_and_a_sealed_server_fail_clearly(run_module, server):
    refused = run_module('vault_policy', name='app', policy=POLICY, **dict(LOGIN, vault_token='wrong'))
    assert refused.failed and 'refused the token (403): check vault_token' in refused.msg
    server.sealed = True
    sealed = run_module('vault_policy', name='app', policy=POLICY, **LOGIN)
    assert sealed.failed and 'is sealed: unseal it first' in sealed.msg
