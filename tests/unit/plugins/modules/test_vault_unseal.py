"""vault_unseal against an in-memory Vault: keys sent one at a time only while it is sealed, never in check mode."""

import json

import pytest

from fake_vault import FakeVault, connect

ADDR = dict(vault_addr='https://bao.example.org:8200')


@pytest.fixture
def server(monkeypatch):
    return connect(monkeypatch, FakeVault(sealed=True, threshold=2, shares=3))


def test_a_sealed_server_is_unsealed_with_just_enough_keys(run_module, server):
    checked = run_module('vault_unseal', check_mode=True, diff=True, keys=server.unseal_keys, **ADDR)
    assert checked.changed and checked['sealed'] is True and checked['keys_submitted'] == 0
    assert checked['diff'] == {'before': {'sealed': True}, 'after': {'sealed': False}}
    assert server.writes == [] and server.sealed
    done = run_module('vault_unseal', keys=server.unseal_keys, **ADDR)
    assert done.changed and done['sealed'] is False and done['keys_submitted'] == 2
    assert done['threshold'] == 2 and done['shares'] == 3 and done['progress'] == 0
    assert server.writes == [('PUT', 'sys/unseal', {'key': 'key-0'}), ('PUT', 'sys/unseal', {'key': 'key-1'})]


def test_an_unsealed_server_gets_no_key(run_module, server):
    server.sealed = False
    result = run_module('vault_unseal', diff=True, keys=server.unseal_keys, **ADDR)
    assert not result.changed and result['sealed'] is False and result['keys_submitted'] == 0
    assert result['diff'] == {'before': {'sealed': False}, 'after': {'sealed': False}}
    assert server.writes == []


def test_progress_left_by_an_earlier_attempt_is_reset_first(run_module, server):
    server.progress = 1
    assert run_module('vault_unseal', keys=server.unseal_keys[1:], **ADDR)['sealed'] is False
    assert server.writes[0] == ('PUT', 'sys/unseal', {'reset': True})


def test_keys_are_read_from_the_file_vault_init_writes(run_module, server, tmp_path):
    keys_file = tmp_path / 'init.json'
    keys_file.write_text(json.dumps({'unseal_keys_b64': server.unseal_keys, 'root_token': 'r'}))
    assert run_module('vault_unseal', keys_file=str(keys_file), **ADDR)['sealed'] is False


@pytest.mark.parametrize('keys, message', [
    (['key-0'], 'keys: 1 key(s) given, the server needs 2; it stays sealed'),
    (['key-0', 'not-a-key'], 'keys: Vault at https://bao.example.org:8200 refused unseal key #2; it stays sealed'),
    (['  ', ''], 'keys: no unseal key given'),
])
def test_keys_that_cannot_unseal_fail_naming_the_key(run_module, server, keys, message):
    result = run_module('vault_unseal', keys=keys, **ADDR)
    assert result.failed and message in result.msg
    assert 'not-a-key' not in json.dumps(result)


def test_keys_of_another_server_fail_saying_so(run_module, server):
    server.threshold = 3
    result = run_module('vault_unseal', keys=['key-0', 'key-1', 'key-0'], **ADDR)
    assert result.failed and 'still sealed (progress' in result.msg and 'do not belong to this server' in result.msg


def test_a_file_without_keys_and_an_uninitialised_server_fail_clearly(run_module, server, tmp_path):
    keys_file = tmp_path / 'init.json'
    keys_file.write_text('{"root_token": "r"}')
    result = run_module('vault_unseal', keys_file=str(keys_file), **ADDR)
    assert result.failed and 'keys_file {0} holds no list of keys'.format(keys_file) in result.msg
    server.initialized = False
    result = run_module('vault_unseal', keys=['key-0', 'key-1'], **ADDR)
    assert result.failed and 'is not initialised: initialise it first' in result.msg
