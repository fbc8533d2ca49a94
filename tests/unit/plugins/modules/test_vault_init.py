"""vault_init against an in-memory Vault: initialised once, the keys only where asked, never in check mode."""

import json
import stat

import pytest

from fake_vault import FakeVault, connect

ADDR = dict(vault_addr='https://bao.example.org:8200')


@pytest.fixture
def server(monkeypatch):
    return connect(monkeypatch, FakeVault(initialized=False, sealed=True))


def test_a_new_server_is_initialised_and_its_keys_kept_private(run_module, server, tmp_path):
    dest = tmp_path / 'init.json'
    checked = run_module('vault_init', check_mode=True, diff=True, dest=str(dest), secret_shares=3, secret_threshold=2,
                         **ADDR)
    assert checked.changed and checked['initialized'] is False and not dest.exists()
    assert checked['diff'] == {'before': {'initialized': False},
                               'after': {'initialized': True, 'secret_shares': 3, 'secret_threshold': 2}}
    assert server.writes == []
    done = run_module('vault_init', dest=str(dest), secret_shares=3, secret_threshold=2, **ADDR)
    assert done.changed and done['initialized'] is True and done['sealed'] is True
    assert 'root_token' not in done and 'unseal_keys_b64' not in done
    assert server.writes == [('PUT', 'sys/init', {'secret_shares': 3, 'secret_threshold': 2})]
    kept = json.loads(dest.read_text())
    assert kept['unseal_keys_b64'] == server.unseal_keys and kept['root_token']
    assert stat.S_IMODE(dest.stat().st_mode) == 0o600


def test_keys_are_returned_only_when_asked(run_module, server):
    result = run_module('vault_init', return_keys=True, **ADDR)
    assert result['unseal_keys_b64'] == server.unseal_keys and len(result['unseal_keys_hex']) == 5
    assert result['root_token']


def test_an_initialised_server_is_left_alone(run_module, server, tmp_path):
    server.initialized, server.sealed, server.shares, server.threshold = True, False, 5, 3
    dest = tmp_path / 'init.json'
    result = run_module('vault_init', dest=str(dest), return_keys=True, **ADDR)
    assert not result.changed and 'root_token' not in result and not dest.exists()
    assert (result['initialized'], result['sealed'], result['secret_shares'], result['secret_threshold']) == (True, False, 5, 3)
    assert server.writes == []


@pytest.mark.parametrize('args, message', [
    (dict(return_keys=True, secret_shares=0), 'secret_shares must be 1 or more, not 0'),
    (dict(return_keys=True, secret_shares=3, secret_threshold=4), 'secret_threshold must be between 1 and secret_shares (3), not 4'),
    (dict(), 'set dest and/or return_keys=true'),
    (dict(dest='/nonexistent/dir/init.json'), 'dest /nonexistent/dir/init.json: directory /nonexistent/dir does not exist'),
    (dict(return_keys=True, vault_retries=-1), 'retries must be 0 or more, not -1'),
])
def test_bad_input_fails_before_initialising(run_module, server, args, message):
    result = run_module('vault_init', **dict(ADDR, **args))
    assert result.failed and message in result.msg
    assert server.writes == [] and not server.initialized
