"""talos_etcd_snapshot without a lab: one node per call, the first that answers; the file whole, 0600, with its
.sha256; a recent snapshot kept; check mode writes nothing."""

import hashlib
import os
import re

from fake_talos import DOWN, FakeTalosctl

MEMBERS = [dict(id='3a2f7c9d1e0b4a56', hostname='cp-1')]
ARGS = dict(binary_path='/usr/bin/talosctl')


def cluster(monkeypatch, first=None, second=None):
    fake = FakeTalosctl().node('10.0.40.11', **(first or dict(etcd=MEMBERS))).node('10.0.40.12', **(second or dict(
        etcd=MEMBERS)))
    return fake.install(monkeypatch, 'talos_etcd_snapshot')


def only_files(directory):
    return sorted(os.listdir(directory))


def test_a_snapshot_is_taken_from_one_node_and_put_in_place_with_its_hash(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch)
    dest = tmp_path / 'etcd.db'
    result = run_module('talos_etcd_snapshot', nodes=['10.0.40.11', '10.0.40.12'], dest=str(dest), **ARGS)
    assert result.changed and result['node'] == '10.0.40.11' and result['path'] == str(dest)
    data = dest.read_bytes()
    assert len(data) % 512 == 32 and result['size'] == len(data)
    assert result['sha256'] == hashlib.sha256(data).hexdigest()
    assert (tmp_path / 'etcd.db.sha256').read_text() == '{0}  etcd.db\n'.format(result['sha256'])
    assert os.stat(dest).st_mode & 0o777 == 0o600
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', result['taken_at'])
    assert only_files(tmp_path) == ['etcd.db', 'etcd.db.sha256']  # no temporary file left
    calls = fake.ran('etcd snapshot')
    assert [call.nodes for call in calls] == [['10.0.40.11']]
    assert os.path.dirname(calls[0].words[2]) == str(tmp_path) and calls[0].words[2] != str(dest)


def test_a_down_node_or_one_without_etcd_is_passed_over(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch, first=dict(state=DOWN), second=dict(etcd=MEMBERS))
    fake.node('10.0.40.13', etcd=None)
    result = run_module('talos_etcd_snapshot', nodes=['10.0.40.11', '10.0.40.13', '10.0.40.12'],
                        dest=str(tmp_path / 'etcd.db'), **ARGS)
    assert result.changed and result['node'] == '10.0.40.12'
    assert [call.nodes for call in fake.ran('etcd snapshot')] == [['10.0.40.11'], ['10.0.40.13'], ['10.0.40.12']]


def test_no_node_answering_fails_naming_each_and_leaves_no_file(run_module, monkeypatch, tmp_path):
    cluster(monkeypatch, first=dict(state=DOWN), second=dict(etcd=None))
    result = run_module('talos_etcd_snapshot', nodes=['10.0.40.11', '10.0.40.12'], dest=str(tmp_path / 'etcd.db'),
                        **ARGS)
    assert result.failed and result.msg.startswith('no node could take the etcd snapshot: 10.0.40.11: ')
    assert '10.0.40.12: talosctl etcd snapshot failed (rc=1): ' in result.msg and 'etcd is not running' in result.msg
    assert only_files(tmp_path) == []


def test_in_a_directory_the_snapshot_is_named_with_the_time(run_module, monkeypatch, tmp_path):
    cluster(monkeypatch)
    result = run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(tmp_path), prefix='lab', **ARGS)
    name = os.path.basename(result['path'])
    assert re.match(r'^lab-\d{8}T\d{6}Z\.db$', name) and os.path.dirname(result['path']) == str(tmp_path)
    assert only_files(tmp_path) == [name, name + '.sha256']


def test_a_recent_snapshot_is_kept(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch)
    first = run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(tmp_path), **ARGS)
    again = run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(tmp_path), max_age=3600, **ARGS)
    assert not again.changed and again['path'] == first['path'] and again['sha256'] == first['sha256']
    assert len(fake.ran('etcd snapshot')) == 1


def test_an_old_or_damaged_snapshot_is_replaced(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch)
    dest = tmp_path / 'etcd.db'
    run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(dest), **ARGS)
    os.utime(dest, (1, 1))  # written long ago
    assert run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(dest), max_age=3600, **ARGS).changed
    dest.write_bytes(b'damaged')
    assert run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(dest), max_age=3600, **ARGS).changed
    assert len(fake.ran('etcd snapshot')) == 3 and len(dest.read_bytes()) % 512 == 32


def test_check_mode_takes_and_writes_nothing(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch)
    result = run_module('talos_etcd_snapshot', check_mode=True, diff=True, nodes=['10.0.40.11'],
                        dest=str(tmp_path / 'etcd.db'), **ARGS)
    assert result.changed and result['path'] == str(tmp_path / 'etcd.db')
    assert result['diff'] == {'before': {'snapshot': None}, 'after': {'snapshot': str(tmp_path / 'etcd.db')}}
    assert not fake.ran('etcd snapshot') and only_files(tmp_path) == []


def test_bad_inputs_are_named(run_module, monkeypatch, tmp_path):
    cluster(monkeypatch)
    result = run_module('talos_etcd_snapshot', dest=str(tmp_path / 'etcd.db'), **ARGS)
    assert result.failed and result.msg == 'nodes must name the control-plane node(s) to take the etcd snapshot from'
    result = run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(tmp_path / 'no' / 'etcd.db'), **ARGS)
    assert result.failed and result.msg == 'dest: no directory {0} to write the snapshot in'.format(tmp_path / 'no')
    result = run_module('talos_etcd_snapshot', nodes=['10.0.40.11'], dest=str(tmp_path), max_age=-1, **ARGS)
    assert result.failed and result.msg == 'max_age must be 0 or more seconds, not -1'
