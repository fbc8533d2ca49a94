"""vault_raft_snapshot against an in-memory Vault: a snapshot saved whole, 0600, with its .sha256, a recent one kept;
a restore of it brings the data back, refused across unseal keys unless forced; storage that is not raft named."""

import hashlib
import json
import os

import pytest

from fake_vault import LOGIN, FakeVault, connect


@pytest.fixture
def server(monkeypatch):
    server = connect(monkeypatch, FakeVault())
    server.put_kv('app', {'password': 'one'})
    return server


def take(run_module, dest, **extra):
    return run_module('vault_raft_snapshot', dest=str(dest), **dict(LOGIN, **extra))


def test_a_snapshot_is_saved_whole_with_its_hash(run_module, server, tmp_path):
    dest = tmp_path / 'bao.snap'
    result = take(run_module, dest)
    data = dest.read_bytes()
    assert result.changed and result['path'] == str(dest) and result['size'] == len(data)
    assert json.loads(data)['kv']['app']['current'] == 1
    assert result['sha256'] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / 'bao.snap.sha256').read_text() == '{0}  bao.snap\n'.format(result['sha256'])
    assert os.stat(dest).st_mode & 0o777 == 0o600
    assert sorted(os.listdir(tmp_path)) == ['bao.snap', 'bao.snap.sha256']
    assert 'one' not in json.dumps(result)


def test_a_recent_snapshot_in_a_directory_is_kept(run_module, server, tmp_path):
    first = take(run_module, tmp_path)
    assert os.path.basename(first['path']).startswith('raft-') and first['path'].endswith('.snap')
    calls = server.calls
    again = take(run_module, tmp_path, max_age=600)
    assert not again.changed and again['path'] == first['path'] and again['sha256'] == first['sha256']
    assert server.calls - calls == 2  # the seal status and the token lookup, no snapshot


def test_check_mode_takes_and_writes_nothing(run_module, server, tmp_path):
    result = run_module('vault_raft_snapshot', check_mode=True, diff=True, dest=str(tmp_path / 'bao.snap'), **LOGIN)
    assert result.changed and result['diff']['after'] == {'snapshot': str(tmp_path / 'bao.snap')}
    assert os.listdir(tmp_path) == []


def test_a_restore_brings_the_snapshot_data_back_and_waits(run_module, server, tmp_path):
    dest = tmp_path / 'bao.snap'
    taken = take(run_module, dest)
    server.put_kv('app', {'password': 'two'})
    checked = run_module('vault_raft_snapshot', check_mode=True, state='restored', src=str(dest), **LOGIN)
    assert checked.changed and server.written('POST') == []
    result = run_module('vault_raft_snapshot', state='restored', src=str(dest), **LOGIN)
    assert result.changed and result['sha256'] == taken['sha256'] and result['path'] == str(dest)
    assert [(verb, path) for verb, path, dummy in server.written('POST')] == [('POST', 'sys/storage/raft/snapshot')]
    assert server.kv['app']['current'] == 1 and server.kv['app']['versions'][1]['data'] == {'password': 'one'}
    assert server.health_checks == 1


def test_a_snapshot_of_other_unseal_keys_needs_force(run_module, server, tmp_path):
    dest = tmp_path / 'bao.snap'
    take(run_module, dest)
    server.unseal_keys = ['rebuilt-{0}'.format(number) for number in range(5)]
    refused = run_module('vault_raft_snapshot', state='restored', src=str(dest), **LOGIN)
    assert refused.failed and 'use the snapshot-force API to bypass this check' in refused.msg
    assert refused.msg.startswith('restoring {0} into https://bao.example.org:8200 (sys/storage/raft/snapshot) '
                                  'failed: '.format(dest))
    forced = run_module('vault_raft_snapshot', state='restored', src=str(dest), force=True, **LOGIN)
    assert forced.changed and server.written('POST')[-1][1] == 'sys/storage/raft/snapshot-force'
    assert server.unseal_keys == ['key-{0}'.format(number) for number in range(5)]


def test_a_snapshot_that_does_not_match_its_hash_is_not_sent(run_module, server, tmp_path):
    dest = tmp_path / 'bao.snap'
    take(run_module, dest)
    dest.write_bytes(dest.read_bytes() + b' ')
    result = run_module('vault_raft_snapshot', state='restored', src=str(dest), **LOGIN)
    assert result.failed and result.msg.startswith('src: {0} does not match {0}.sha256'.format(dest))
    assert server.written('POST') == []


def test_a_missing_snapshot_is_named(run_module, server, tmp_path):
    result = run_module('vault_raft_snapshot', state='restored', src=str(tmp_path / 'gone.snap'), **LOGIN)
    assert result.failed and result.msg == 'src: no snapshot file at {0}'.format(tmp_path / 'gone.snap')


def test_storage_that_is_not_raft_is_named(run_module, server, tmp_path):
    server.storage = 'inmem'
    snapshot = tmp_path / 'bao.snap'
    result = take(run_module, snapshot)
    assert result.failed and result.msg == ('Vault at https://bao.example.org:8200 does not use raft storage: '
                                            'sys/storage/raft/snapshot answered 404 (unsupported path)')
    assert os.listdir(tmp_path) == []
    snapshot.write_bytes(server.snapshot())
    result = run_module('vault_raft_snapshot', state='restored', src=str(snapshot), force=True, **LOGIN)
    assert result.failed and result.msg == ('Vault at https://bao.example.org:8200 does not use raft storage: '
                                            'sys/storage/raft/snapshot-force answered 404 (unsupported path)')
    server.storage = 'raft-ha'
    result = take(run_module, snapshot)
    assert result.failed and result.msg.startswith('taking a raft snapshot of https://bao.example.org:8200 '
                                                   '(sys/storage/raft/snapshot) failed: raft storage is not in use')


def test_the_options_each_state_needs_are_required(run_module, server, tmp_path):
    assert 'dest' in run_module('vault_raft_snapshot', **LOGIN).msg
    assert 'src' in run_module('vault_raft_snapshot', state='restored', **LOGIN).msg


def test_a_server_not_active_again_after_a_restore_fails_the_wait(run_module, server, tmp_path, monkeypatch):
    dest = tmp_path / 'bao.snap'
    take(run_module, dest)
    original = server.restore

    def restore_then_seal(handle, force):
        original(handle, force)
        server.sealed = True  # as OpenBao seals itself when it cannot apply the snapshot
    monkeypatch.setattr(server, 'restore', restore_then_seal)
    result = run_module('vault_raft_snapshot', state='restored', src=str(dest), wait_timeout=0, **LOGIN)
    assert result.failed and result.msg == ('Vault at https://bao.example.org:8200 is not active 0s after the restore: '
                                            'it is sealed (a failed restore seals it; see its log)')
    assert server.health_checks == 1
