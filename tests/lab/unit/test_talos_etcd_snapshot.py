"""The Kubernetes API's store as the etcd snapshot talosctl saves and a recovery restores: etcd's 32-byte sha256
trailer on whole 512-byte blocks, its integrity check with etcd's messages, and a restore that keeps the objects' uids
and resourceVersions."""

import hashlib

import pytest

from castle_lab.kube import upstream_crds
from castle_lab.kube.api import snapshot
from castle_lab.kube.api.objects import KubeApi
from castle_lab.talos import cli

CONFIGMAPS = ('', 'v1', 'configmaps')
CRD = 'gitrepositories.source.toolkit.fluxcd.io'


def populated():
    api = KubeApi(seed_node=False)
    configmaps = api.registry.get(*CONFIGMAPS)
    api.create(configmaps, 'default', {'metadata': {'name': 'kept'}, 'data': {'answer': '42'}}, 'test')
    crds = api.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
    api.create(crds, None, upstream_crds.bundled_crd(CRD), 'test')
    return api


def test_a_snapshot_carries_the_sha256_of_whole_blocks_as_etcds_does():
    data = snapshot.dump(populated().store)
    # talosctl's check for the trailer: the size modulo 512 is sha256.Size.
    assert len(data) % 512 == 32
    assert data[-32:] == hashlib.sha256(data[:-32]).digest()
    assert snapshot.verify(data) == data[:-32]


def test_a_corrupted_trailer_is_refused_unless_the_check_is_skipped():
    data = bytearray(snapshot.dump(populated().store))
    data[-1] ^= 0xff
    with pytest.raises(ValueError) as caught:
        snapshot.verify(bytes(data))
    expected = '[' + ' '.join(str(b) for b in data[-32:]) + ']'
    actual = '[' + ' '.join(str(b) for b in hashlib.sha256(bytes(data[:-32])).digest()) + ']'
    assert str(caught.value) == 'expected sha256 {0}, got {1}'.format(expected, actual)
    assert snapshot.verify(bytes(data), skip_hash_check=True) == bytes(data[:-32])


def test_a_copy_without_trailer_needs_the_skip():
    database = snapshot.dump(populated().store)[:-32]
    with pytest.raises(ValueError, match=r'^snapshot missing hash but --skip-hash-check=false$'):
        snapshot.verify(database)
    assert snapshot.verify(database, skip_hash_check=True) == database


def test_garbage_is_no_database():
    with pytest.raises(snapshot.SnapshotInvalid, match='^invalid database$'):
        snapshot.status(b'not a snapshot' * 40)


def test_a_restore_keeps_uids_and_resource_versions_and_serves_the_crds_types():
    source = populated()
    kept = source.get(source.registry.get(*CONFIGMAPS), 'default', 'kept')
    data = snapshot.dump(source.store)
    found = snapshot.status(data)
    assert (found['revision'], found['total_key']) == (source.store.revision, sum(
        len(objects) for objects in source.store.objects.values()))

    target = KubeApi(seed_node=False)
    assert target.registry.get('source.toolkit.fluxcd.io', 'v1', 'gitrepositories') is None
    snapshot.restore(target, snapshot.verify(data))
    back = target.get(target.registry.get(*CONFIGMAPS), 'default', 'kept')
    assert back['metadata']['uid'] == kept['metadata']['uid']
    assert back['metadata']['resourceVersion'] == kept['metadata']['resourceVersion']
    assert target.registry.get('source.toolkit.fluxcd.io', 'v1', 'gitrepositories') is not None
    # Writes go on from the snapshot's revision.
    created = target.create(target.registry.get(*CONFIGMAPS), 'default', {'metadata': {'name': 'new'}}, 'test')
    assert int(created['metadata']['resourceVersion']) == source.store.revision + 1


def test_sizes_print_as_go_humanize_does():
    assert [cli.humanize_bytes(size) for size in (0, 9, 999, 1000, 12345, 2500000)] == [
        '0 B', '9 B', '999 B', '1.0 kB', '12 kB', '2.5 MB']
