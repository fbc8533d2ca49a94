"""What every Vault module shares, run through vault_policy: logins, retries of 5xx and connection errors with a
capped backoff, 4xx never retried, and the options of a module of another layer that also uses Vault."""

import pytest
import requests
from hvac import exceptions

from ansible_collections.ephemeral.castle.plugins.module_utils import vault
from fake_vault import LOGIN, FakeVault, connect

POLICY = 'path "kv/data/app/*" {\n  capabilities = ["read"]\n}\n'


@pytest.fixture
def server(monkeypatch):
    return connect(monkeypatch, FakeVault())


@pytest.fixture
def sleeps(monkeypatch):
    waited = []
    monkeypatch.setattr(vault.Vault, 'sleep', staticmethod(waited.append))
    return waited


def bad_gateway():
    return exceptions.BadGateway('bad gateway', method='GET', url='/v1/sys/policies/acl/app')


def test_5xx_and_connection_errors_are_retried_with_a_capped_backoff(run_module, server, sleeps):
    server.failures = [bad_gateway(), requests.exceptions.ConnectionError('refused'), bad_gateway(), bad_gateway()]
    result = run_module('vault_policy', name='app', policy=POLICY, retries=4, **LOGIN)
    assert result.changed and server.failures == []
    assert len(sleeps) == 4
    assert all(0 <= waited <= min(vault.BACKOFF_CAP, 0.5 * 2 ** attempt) for attempt, waited in enumerate(sleeps))


def test_retries_run_out_naming_the_attempts_and_the_old_option_name_still_works(run_module, server, sleeps):
    server.failures = [bad_gateway()] * 5
    result = run_module('vault_policy', name='app', policy=POLICY, vault_retries=1, **LOGIN)
    assert result.failed and 'failed after 2 attempt(s) on https://bao.example.org:8200' in result.msg
    assert len(sleeps) == 1


def fail_on(server, monkeypatch, method, error, seal=False):
    """The server answers `method` calls with error (sealing itself first when seal=True)."""
    answer = server.answer

    def failing(verb, path, body=None):
        if verb == method and path.startswith('sys/policies/'):
            server.sealed = seal
            raise error
        return answer(verb, path, body)
    monkeypatch.setattr(server, 'answer', failing)


def test_a_server_sealed_meanwhile_is_named_after_the_retries(run_module, server, sleeps, monkeypatch):
    fail_on(server, monkeypatch, 'GET', bad_gateway(), seal=True)
    result = run_module('vault_policy', name='app', policy=POLICY, retries=0, **LOGIN)
    assert result.failed and 'Vault at https://bao.example.org:8200 is sealed: unseal it first' in result.msg


def test_4xx_and_tls_errors_are_not_retried(run_module, server, sleeps, monkeypatch):
    fail_on(server, monkeypatch, 'POST', exceptions.InvalidRequest('bad policy', method='POST', url='/v1/sys/policies/acl/app'))
    result = run_module('vault_policy', name='app', policy=POLICY, **LOGIN)
    assert result.failed and 'writing sys/policies/acl/app failed: bad policy' in result.msg
    server.failures = [requests.exceptions.SSLError('certificate verify failed')]
    result = run_module('vault_policy', name='app', policy=POLICY, **LOGIN)
    assert result.failed and 'TLS verification of https://bao.example.org:8200 failed (set vault_ca_cert)' in result.msg
    assert sleeps == []


@pytest.mark.parametrize('args, message', [
    (dict(vault_auth_method='approle', vault_role_id='ci'), 'vault_secret_id required with vault_auth_method=approle'),
    (dict(vault_auth_method='approle', vault_role_id='ci', vault_secret_id='wrong'),
     'AppRole login at auth/approle (vault_role_id, vault_secret_id) refused: invalid credentials'),
    (dict(vault_auth_method='kubernetes'), 'vault_kubernetes_role is required with vault_auth_method=kubernetes'),
    (dict(vault_auth_method='kubernetes', vault_kubernetes_role='ci', vault_kubernetes_jwt_file='/nonexistent/token'),
     'cannot read vault_kubernetes_jwt_file /nonexistent/token'),
    (dict(vault_token=None), 'vault_token (or VAULT_TOKEN) is required with vault_auth_method=token'),
    (dict(vault_addr=None), 'vault_addr (or VAULT_ADDR) is required to reach Vault'),
])
def test_a_login_that_cannot_work_fails_naming_the_options(run_module, server, monkeypatch, args, message):
    monkeypatch.delenv('VAULT_TOKEN', raising=False)
    monkeypatch.delenv('VAULT_ADDR', raising=False)
    server.approles[('approle', 'ci')] = 'right'
    login = {key: value for key, value in dict(LOGIN, **args).items() if value is not None}
    result = run_module('vault_policy', name='app', policy=POLICY, **login)
    assert result.failed and message in result.msg
    assert server.writes == []


def test_approle_and_kubernetes_logins(run_module, server, tmp_path):
    server.approles[('ci-approle', 'ci')] = 'right'
    server.kubernetes_roles[('kubernetes-lab', 'ci')] = 'sa-token'
    approle = dict(vault_addr=LOGIN['vault_addr'], vault_auth_method='approle', vault_auth_mount='ci-approle',
                   vault_role_id='ci', vault_secret_id='right')
    assert run_module('vault_policy', name='one', policy=POLICY, **approle).changed
    jwt_file = tmp_path / 'token'
    jwt_file.write_text('sa-token\n')
    kubernetes = dict(vault_addr=LOGIN['vault_addr'], vault_auth_method='kubernetes', vault_auth_mount='kubernetes-lab',
                      vault_kubernetes_role='ci', vault_kubernetes_jwt_file=str(jwt_file))
    assert run_module('vault_policy', name='two', policy=POLICY, **kubernetes).changed
    assert [write[1] for write in server.writes] == ['sys/policies/acl/one', 'sys/policies/acl/two']


def test_a_module_of_another_layer_keeps_its_own_retries_beside_vault_retries(server, sleeps):
    spec = vault.connection_argument_spec(kv=True)
    assert 'retries' not in spec and spec['vault_retries']['default'] == 3 and spec['vault_mount']['default'] == 'kv'
    assert vault.layer(auth=False).argument_spec['retries']['aliases'] == ['vault_retries']
    assert 'vault_token' not in vault.layer(auth=False).argument_spec
    params = {name: option.get('default') for name, option in spec.items()}
    params.update(LOGIN, retries=7, vault_retries=0)
    server.failures = [bad_gateway()]
    with pytest.raises(vault.VaultError, match='failed after 1 attempt'):
        vault.VaultKV(params)
    assert sleeps == []
