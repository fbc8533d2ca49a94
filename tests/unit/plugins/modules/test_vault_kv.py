"""vault_kv against an in-memory KV v2: a new version only when the data differs, diffs that never show a value."""

import json

import pytest

from fake_vault import LOGIN, FakeVault, connect

SECRET = {'user': 'app', 'password': 's3cret-1'}


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.put_kv('app', SECRET)
    return server


def test_a_new_secret_is_written_once(run_module, server):
    checked = run_module('vault_kv', check_mode=True, diff=True, path='new', data=SECRET, **LOGIN)
    assert checked.changed and checked['added'] == ['password', 'user'] and checked['version'] is None
    assert checked['diff']['before'] == {} and checked['diff']['after'] == {'password': '<new value>', 'user': '<new value>'}
    assert server.writes == []
    done = run_module('vault_kv', path='new', data=SECRET, **LOGIN)
    assert done.changed and done['version'] == 1 and done['path'] == 'kv/new'
    assert server.writes == [('POST', 'kv/data/new', {'data': SECRET})]
    again = run_module('vault_kv', path='new', data=SECRET, **LOGIN)
    assert not again.changed and again['version'] == 1 and len(server.writes) == 1


def test_replace_and_merge_name_the_keys_and_never_a_value(run_module, server):
    result = run_module('vault_kv', diff=True, path='app', data={'password': 's3cret-2', 'token': 's3cret-3'}, **LOGIN)
    assert (result['added'], result['updated'], result['removed']) == (['token'], ['password'], ['user'])
    assert result['diff']['before'] == {'password': '<old value>', 'user': '<old value>'}
    assert result['diff']['after'] == {'password': '<new value>', 'token': '<new value>'}
    assert 's3cret' not in json.dumps(result)
    assert server.writes[-1] == ('POST', 'kv/data/app', {'data': {'password': 's3cret-2', 'token': 's3cret-3'}})
    merged = run_module('vault_kv', path='app', merge=True, data={'user': 'app'}, **LOGIN)
    assert merged['added'] == ['user'] and merged['removed'] == [] and merged['version'] == 3
    assert server.writes[-1][2] == {'data': {'password': 's3cret-2', 'token': 's3cret-3', 'user': 'app'}}


def test_values_are_compared_as_vault_returns_them(run_module, server):
    server.put_kv('port', {'port': 8080})
    assert not run_module('vault_kv', path='port', data={'port': 8080}, **LOGIN).changed
    assert run_module('vault_kv', path='port', data={'port': '8080'}, **LOGIN)['updated'] == ['port']


def test_cas_is_checked_before_writing_also_in_check_mode(run_module, server):
    for check_mode in (True, False):
        result = run_module('vault_kv', check_mode=check_mode, path='app', cas=0, data={'user': 'other'}, **LOGIN)
        assert result.failed and 'cas=0: kv/app is at version 1; nothing written' in result.msg
    assert server.writes == []
    assert run_module('vault_kv', path='app', cas=1, data={'user': 'other'}, **LOGIN)['version'] == 2
    assert server.writes == [('POST', 'kv/data/app', {'data': {'user': 'other'}, 'options': {'cas': 1}})]


def test_absent_soft_deletes_then_undeleted_restores(run_module, server):
    deleted = run_module('vault_kv', path='app', state='absent', **LOGIN)
    assert deleted.changed and deleted['removed'] == ['password', 'user']
    assert not run_module('vault_kv', path='app', state='absent', **LOGIN).changed
    checked = run_module('vault_kv', check_mode=True, path='app', state='undeleted', **LOGIN)
    assert checked.changed and checked['versions'] == [1]
    restored = run_module('vault_kv', diff=True, path='app', state='undeleted', **LOGIN)
    assert restored['versions'] == [1] and restored['diff']['after'] == {'password': '<new value>', 'user': '<new value>'}
    assert server.writes == [('DELETE', 'kv/data/app', None), ('POST', 'kv/undelete/app', {'versions': [1]})]


def test_destroy_versions_or_everything(run_module, server):
    server.put_kv('app', {'user': 'two'})
    gone = run_module('vault_kv', path='app', state='absent', destroy=True, versions=[1, 7], **LOGIN)
    assert gone.changed and gone['versions'] == [1]
    assert not run_module('vault_kv', path='app', state='absent', destroy=True, versions=[1], **LOGIN).changed
    checked = run_module('vault_kv', check_mode=True, path='app', state='absent', destroy=True, **LOGIN)
    assert checked['versions'] == [1, 2] and checked['version'] == 2
    everything = run_module('vault_kv', path='app', state='absent', destroy=True, **LOGIN)
    assert everything['version'] is None and everything['removed'] == ['user']
    assert not run_module('vault_kv', path='app', state='absent', destroy=True, **LOGIN).changed
    assert server.writes == [('POST', 'kv/destroy/app', {'versions': [1]}), ('DELETE', 'kv/metadata/app', None)]


@pytest.mark.parametrize('args, message', [
    (dict(path='app', state='undeleted', versions=[1]), 'version(s) [1] of kv/app are destroyed and cannot be undeleted'),
    (dict(path='app', state='undeleted', versions=[9]), 'versions: kv/app has no version [9]'),
    (dict(path='app', state='absent', destroy=True, versions=[0]), 'versions: [0] holds a version below 1'),
    (dict(path='/', data={}), 'path is empty'),
    (dict(path='app', vault_mount='secret', data={}), 'writing secret/app: not found'),
])
def test_bad_input_fails_naming_it(run_module, server, args, message):
    server.kv['app']['versions'][1]['destroyed'] = True
    result = run_module('vault_kv', **dict(LOGIN, **args))
    assert result.failed and message in result.msg
    assert server.writes == []
