"""etcd's data on the lab's Talos nodes: `talosctl etcd status` and `etcd snapshot` from a control plane node (a
worker refuses them), and `talosctl bootstrap --recover-from` on a wiped control plane bringing the Kubernetes
objects of the snapshot back, after etcd's integrity check of the snapshot's sha256 trailer."""

import hashlib
import json
import re

import pytest
import yaml
from talos_helpers import Talos, talos_vms, until

pytestmark = pytest.mark.lab

STATUS_HEAD = ['NODE', 'MEMBER', 'DB SIZE', 'IN USE', 'LEADER', 'RAFT INDEX', 'RAFT TERM', 'RAFT APPLIED INDEX',
               'LEARNER', 'PROTOCOL', 'STORAGE', 'ERRORS']
ETCD_DOWN = ('rpc error: code = Unavailable desc = connection error: desc = "transport: Error while dialing: dial tcp '
             '127.0.0.1:2379: connect: connection refused"')


def stage(talos, address, insecure=False):
    result = talos('get', 'machinestatus', '-n', address, '-o', 'json', *(['-i'] if insecure else []), expect=None)
    return json.loads(result.stdout)['spec']['stage'] if result.returncode == 0 else None


@pytest.fixture(scope='module')
def cluster(env, pve, tmp_path_factory):
    """A bootstrapped cluster of one control plane node and one worker."""
    talos = Talos(env, tmp_path_factory.mktemp('etcd'))
    with talos_vms(pve, 'etcd') as machines:
        cp, worker = machines['addresses']['cp'], machines['addresses']['worker']
        talos('gen', 'config', 'etcd', 'https://{0}:6443'.format(cp), '--install-disk', '/dev/vda')
        talos('apply-config', '--insecure', '-n', cp, '-f', 'controlplane.yaml')
        talos('apply-config', '--insecure', '-n', worker, '-f', 'worker.yaml')
        until(lambda: stage(talos, cp) == 'running' and stage(talos, worker) == 'running', 'configured nodes')
        talos('bootstrap', '-n', cp)
        talos('kubeconfig', '-n', cp, str(talos.workdir / 'kubeconfig'))
        until(lambda: talos.kubectl('get', 'nodes').stdout.count(' Ready ') == 2, 'two Ready nodes')
        yield talos, cp, worker


def test_etcd_status_lists_the_control_plane_member_and_a_worker_refuses(cluster):
    talos, cp, worker = cluster
    members = talos('etcd', 'members', '-n', cp).stdout.splitlines()
    member = members[1].split()[1]
    status = talos('etcd', 'status', '-n', cp).stdout.splitlines()
    assert re.split(r'\s{3,}', status[0]) == STATUS_HEAD
    assert len(status) == 2
    row = re.split(r'\s{3,}', status[1])
    assert row[:2] == [cp, member] and row[4] == member
    assert re.match(r'^\d+(\.\d)? kB$', row[2]) and re.match(r'^\d+(\.\d)? kB \(\d+\.\d\d%\)$', row[3]), row[2:4]
    assert row[8:11] == ['false', '3.6.4', '3.6.0'] and len(row) == 11  # no errors
    refused = talos('etcd', 'status', '-n', worker, expect=1)
    assert refused.stderr == ('error getting status: 1 error occurred:\n\t* {0}: rpc error: code = Unimplemented desc '
                              '= etcd status is only available on control plane nodes\n\n'.format(worker))


def test_a_snapshot_from_a_worker_is_refused(cluster):
    talos, _cp, worker = cluster
    refused = talos('etcd', 'snapshot', 'worker.db', '-n', worker, expect=1)
    assert refused.stderr == ('error reading: rpc error: code = Unimplemented desc = etcd snapshot is only available '
                              'on control plane nodes\n')
    assert not list(talos.workdir.glob('worker.db*'))


def longhorn_disk(lab, talos, hostname):
    cluster_id = yaml.safe_load((talos.workdir / 'controlplane.yaml').read_text())['cluster']['id']
    digest = hashlib.sha256(cluster_id.encode()).hexdigest()[:12]
    return lab.dir / 'talos' / 'clusters' / digest / 'longhorn' / 'nodes' / hostname


def test_a_wiped_control_plane_recovers_the_snapshots_objects(lab, cluster):
    talos, cp, _worker = cluster
    assert talos.kubectl('create', 'configmap', 'kept', '--from-literal=answer=42').returncode == 0
    uid = talos.kubectl('get', 'configmap', 'kept', '-o', 'jsonpath={.metadata.uid}').stdout
    saved = talos('etcd', 'snapshot', 'etcd.db', '-n', cp).stdout.splitlines()
    size = (talos.workdir / 'etcd.db').stat().st_size
    assert size % 512 == 32 and not (talos.workdir / 'etcd.db.part').exists()
    assert saved[0] == 'etcd snapshot saved to "etcd.db" ({0} bytes)'.format(size)
    assert re.match(r'^snapshot info: hash [0-9a-f]{8}, revision \d+, total keys \d+, total size \d+$', saved[1])
    assert talos.kubectl('create', 'configmap', 'later').returncode == 0
    corrupted = bytearray((talos.workdir / 'etcd.db').read_bytes())
    corrupted[-1] ^= 0xff
    (talos.workdir / 'corrupted.db').write_bytes(bytes(corrupted))

    # The node's Longhorn disk is on its EPHEMERAL partition: a reset wipes it.
    hostname = json.loads(talos('get', 'hostname', '-n', cp, '-o', 'json').stdout)['spec']['hostname']
    disk = longhorn_disk(lab, talos, hostname)
    (disk / 'replicas' / 'r1').mkdir(parents=True)
    (disk / 'replicas' / 'r1' / 'volume.img').write_bytes(b'data')
    talos('reset', '-n', cp, '--graceful=false', '--reboot', '--wait=false')
    until(lambda: stage(talos, cp, insecure=True) == 'maintenance', 'the control plane node wiped')
    assert not disk.exists()
    talos('apply-config', '--insecure', '-n', cp, '-f', 'controlplane.yaml')
    until(lambda: stage(talos, cp) == 'running', 'the control plane node configured again')

    # etcd checks the hash when it starts, after the Bootstrap call has returned: the call succeeds, etcd does not
    # run, and the database the restore wrote stays in its data directory until EPHEMERAL is wiped.
    recovering = talos('bootstrap', '-n', cp, '--recover-from', 'corrupted.db')
    assert recovering.stdout.startswith('recovering from snapshot "corrupted.db": hash ')
    refused = talos('etcd', 'status', '-n', cp, expect=1)
    assert refused.stderr == ('error getting status: 1 error occurred:\n\t* {0}: rpc error: code = Unknown desc = '
                              'failed to query etcd status: {1}\n\n'.format(cp, ETCD_DOWN))
    unsaved = talos('etcd', 'snapshot', 'none.db', '-n', cp, expect=1)
    assert unsaved.stderr == 'error reading: rpc error: code = Unknown desc = failed reading etcd snapshot: {0}\n'.format(
        ETCD_DOWN)
    again = talos('bootstrap', '-n', cp, '--recover-from', 'etcd.db', expect=1)
    assert 'code = AlreadyExists desc = etcd data directory is not empty' in again.stderr
    talos('reset', '-n', cp, '--graceful=false', '--reboot', '--wait=false', '--system-labels-to-wipe', 'EPHEMERAL')
    until(lambda: stage(talos, cp) == 'running', 'the control plane node back with its config')

    talos('bootstrap', '-n', cp, '--recover-from', 'corrupted.db', '--recover-skip-hash-check')
    kept = until(lambda: talos.kubectl('get', 'configmap', 'kept', '-o', 'json').stdout or None, 'the restored API')
    kept = json.loads(kept)
    assert (kept['data'], kept['metadata']['uid']) == ({'answer': '42'}, uid)
    assert 'NotFound' in talos.kubectl('get', 'configmap', 'later').stderr
    until(lambda: talos.kubectl('get', 'nodes').stdout.count(' Ready ') == 2, 'the nodes registered again')
