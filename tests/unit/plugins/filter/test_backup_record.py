"""The backup_record filter: module results and Longhorn backups as the records the gate and the restore read."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.ephemeral.castle.plugins.filter.backup import backup_record


def test_a_snapshot_taken_and_a_snapshot_that_failed():
    taken = {'changed': True, 'path': '/b/castle/etcd-20261204T2000Z.snapshot', 'sha256': 'ab' * 32, 'size': 4096,
             'node': '10.0.0.11', 'taken_at': '2026-12-04T20:00:00Z'}
    assert backup_record(taken, 'etcd') == {
        'kind': 'etcd', 'name': 'etcd-20261204T2000Z.snapshot', 'path': taken['path'], 'sha256': 'ab' * 32,
        'size': 4096, 'node': '10.0.0.11', 'state': 'Completed', 'created': '2026-12-04T20:00:00Z', 'error': ''}
    failed = backup_record({'failed': True, 'msg': 'no control plane node answered'}, 'vault')
    assert (failed['state'], failed['error'], failed['created']) == ('Error', 'no control plane node answered', None)


def test_a_volume_backup_and_a_volume_left_without_one():
    backup = {'volume': 'pvc-1', 'claim': 'blog/blog-content', 'name': 'backup-1', 'url': 's3://b@r/?backup=backup-1',
              'state': 'Completed', 'created': '2026-12-04T20:00:00Z', 'size': '2048'}
    record = backup_record(backup, 'volume')
    assert (record['name'], record['volume'], record['claim'], record['state']) == (
        'backup-1', 'pvc-1', 'blog/blog-content', 'Completed')
    missed = backup_record({'name': 'pvc-2', 'claim': 'kaze/index'}, 'volume', 'backup target default is unavailable')
    assert missed == {'kind': 'volume', 'name': 'pvc-2', 'volume': 'pvc-2', 'claim': 'kaze/index', 'state': 'Error',
                      'created': None, 'error': 'backup target default is unavailable'}


def test_bad_input_is_named():
    with pytest.raises(AnsibleFilterError, match="kind must be one of etcd, vault, volume, got 'disk'"):
        backup_record({}, 'disk')
    with pytest.raises(AnsibleFilterError, match='got list'):
        backup_record([], 'etcd')


def test_a_snapshot_a_check_run_only_planned_is_not_a_backup():
    planned = backup_record({'changed': True, 'path': '/b/etcd-20261204T2000Z.db', 'taken_at': '2026-12-04T20:00:00Z'},
                            'etcd')
    assert (planned['state'], planned['error']) == ('Error', 'no snapshot was taken (check mode)')
