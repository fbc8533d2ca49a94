"""talos_bootstrap without a lab: bootstraps once, never beside a running etcd, from a snapshot when given one,
check mode and diff."""

import pytest

from fake_talos import FakeTalosctl, etcd_snapshot_bytes

NODES = ['10.0.40.11', '10.0.40.12']
ARGS = dict(binary_path='/usr/bin/talosctl', nodes=NODES)


def cluster(monkeypatch, etcd=None):
    fake = FakeTalosctl().node('10.0.40.11').node('10.0.40.12', etcd=etcd)
    return fake.install(monkeypatch, 'talos_bootstrap')


def test_a_cluster_without_etcd_is_bootstrapped_on_the_first_node(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    fake.answers['bootstrap'] = (0, '', '')
    result = run_module('talos_bootstrap', diff=True, **ARGS)
    assert result.changed and result['node'] == '10.0.40.11' and result['members'] == []
    assert [call.nodes for call in fake.ran('bootstrap')] == [['10.0.40.11']]
    assert result['diff'] == {'before': {'etcd_members': 0}, 'after': {'etcd_members': 1}}


def test_check_mode_bootstraps_nothing(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    result = run_module('talos_bootstrap', check_mode=True, **ARGS)
    assert result.changed and not fake.ran('bootstrap')


def test_members_on_any_node_mean_nothing_to_do(run_module, monkeypatch):
    fake = cluster(monkeypatch, etcd=[dict(id='3a2f7c9d1e0b4a56', hostname='cp-2')])
    result = run_module('talos_bootstrap', **ARGS)
    assert not result.changed and result['members'][0]['HOSTNAME'] == 'cp-2'
    assert not fake.ran('bootstrap')


def test_already_bootstrapped_is_not_a_change(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    fake.answers['bootstrap'] = (1, '', 'rpc error: code = AlreadyExists desc = etcd data directory is not empty')
    result = run_module('talos_bootstrap', diff=True, **ARGS)
    assert not result.failed and not result.changed and 'diff' not in result


def test_a_refused_bootstrap_fails_with_talosctl_words(run_module, monkeypatch):
    fake = cluster(monkeypatch)
    fake.answers['bootstrap'] = (1, '', 'rpc error: code = PermissionDenied desc = not authorized')
    result = run_module('talos_bootstrap', **ARGS)
    assert result.failed and result['rc'] == 1
    assert result.msg == 'talosctl bootstrap failed (rc=1): rpc error: code = PermissionDenied desc = not authorized'
    assert '--nodes' in result['command']


def test_no_nodes_is_named(run_module, monkeypatch):
    cluster(monkeypatch)
    result = run_module('talos_bootstrap', binary_path='/usr/bin/talosctl')
    assert result.failed and result.msg == 'nodes must name the node to bootstrap'


def test_talosconfig_and_its_content_exclude_each_other(run_module, monkeypatch):
    cluster(monkeypatch)
    result = run_module('talos_bootstrap', talosconfig='/t', talosconfig_content='context: lab', **ARGS)
    assert result.failed and 'mutually exclusive' in result.msg


def saved_snapshot(tmp_path):
    snapshot = tmp_path / 'etcd.db'
    snapshot.write_bytes(etcd_snapshot_bytes(b'{}'))
    return str(snapshot)


def test_a_snapshot_is_recovered_from_when_given(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch)
    fake.answers['bootstrap'] = (0, '', '')
    snapshot = saved_snapshot(tmp_path)
    checked = run_module('talos_bootstrap', check_mode=True, recover_from=snapshot, **ARGS)
    assert checked.changed and checked['recovered_from'] == snapshot and not fake.ran('bootstrap')
    result = run_module('talos_bootstrap', recover_from=snapshot, **ARGS)
    assert result.changed and result['recovered_from'] == snapshot
    assert [call.argv[1:3] for call in fake.ran('bootstrap')] == [['bootstrap', '--recover-from=' + snapshot]]
    assert '--recover-skip-hash-check' not in fake.ran('bootstrap')[0].argv
    run_module('talos_bootstrap', recover_from=snapshot, recover_skip_hash_check=True, **ARGS)
    assert fake.ran('bootstrap')[1].argv[1:4] == ['bootstrap', '--recover-from=' + snapshot, '--recover-skip-hash-check']


@pytest.mark.parametrize('etcd, answer', [
    ([dict(id='3a2f7c9d1e0b4a56', hostname='cp-2')], None),
    (None, (1, '', 'rpc error: code = AlreadyExists desc = etcd data directory is not empty')),
])
def test_a_bootstrapped_etcd_is_never_recovered_over(run_module, monkeypatch, tmp_path, etcd, answer):
    fake = cluster(monkeypatch, etcd=etcd)
    if answer:
        fake.answers['bootstrap'] = answer
    result = run_module('talos_bootstrap', recover_from=saved_snapshot(tmp_path), **ARGS)
    assert not result.failed and not result.changed and result['recovered_from'] is None
    assert len(fake.ran('bootstrap')) == (1 if answer else 0)


def test_a_missing_snapshot_fails_before_talosctl_runs(run_module, monkeypatch, tmp_path):
    fake = cluster(monkeypatch)
    missing = tmp_path / 'gone.db'
    result = run_module('talos_bootstrap', recover_from=str(missing), **ARGS)
    assert result.failed and result.msg == 'recover_from: no snapshot file at {0}'.format(missing)
    result = run_module('talos_bootstrap', recover_from=str(tmp_path), **ARGS)
    assert result.failed and result.msg == 'recover_from: no snapshot file at {0}'.format(tmp_path)
    assert fake.calls == []
