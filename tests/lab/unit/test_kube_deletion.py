"""Deletion as kube-apiserver and the garbage collector do it: propagation policies, finalizers, preconditions."""

import pytest

from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers.core import GarbageCollector

HOLD = 'lab.example.com/hold'


@pytest.fixture
def api():
    api = KubeApi()
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': 'team'}}, 'test')
    return api


@pytest.fixture
def collector(api):
    """The garbage collector fed by the store's events; settle() runs it until it has nothing left to do."""
    gc = GarbageCollector(api)
    api.store.listeners.append(gc.notify)

    def settle():
        for _round in range(100):
            if gc.queue.empty():
                return
            item = gc.queue.get_nowait()
            gc.pending.discard(item)
            gc.reconcile(*item)
        raise AssertionError('the garbage collector never settled')
    return settle


def configmaps(api):
    return api.registry.get('', 'v1', 'configmaps')


def ref(owner, block=False):
    found = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'name': owner['metadata']['name'],
             'uid': owner['metadata']['uid']}
    if block:
        found['blockOwnerDeletion'] = True
    return found


def config_map(api, name, owners=(), finalizers=(), block=False):
    meta = {'name': name}
    if owners:
        meta['ownerReferences'] = [ref(o, block) for o in owners]
    if finalizers:
        meta['finalizers'] = list(finalizers)
    return api.create(configmaps(api), 'team', {'metadata': meta, 'data': {}}, 'test')


def stored(api, name):
    return api.store.get(configmaps(api).key, 'team', name)


def without_finalizers(api, name):
    body = api.get(configmaps(api), 'team', name)
    body['metadata'].pop('finalizers')
    return api.replace(configmaps(api), 'team', name, body, 'test')


def test_orphan_keeps_the_dependents_and_drops_their_reference(api, collector):
    owner = config_map(api, 'owner')
    other = config_map(api, 'other')
    config_map(api, 'child', [owner, other])
    config_map(api, 'only-child', [owner])

    marked, gone = api.delete(configmaps(api), 'team', 'owner', propagation='Orphan')
    assert not gone and marked['metadata']['finalizers'] == ['orphan'] and marked['metadata']['deletionTimestamp']
    collector()
    assert stored(api, 'owner') is None
    assert [r['name'] for r in stored(api, 'child')['metadata']['ownerReferences']] == ['other']
    assert 'ownerReferences' not in stored(api, 'only-child')['metadata']


def test_foreground_waits_for_blocking_dependents_and_their_finalizers(api, collector):
    owner = config_map(api, 'owner')
    config_map(api, 'held', [owner], finalizers=[HOLD], block=True)
    config_map(api, 'free', [owner])

    api.delete(configmaps(api), 'team', 'owner', propagation='Foreground')
    collector()
    assert stored(api, 'free') is None
    held = stored(api, 'held')
    assert held['metadata']['deletionTimestamp'] and held['metadata']['finalizers'] == [HOLD]
    still = stored(api, 'owner')['metadata']
    assert still['deletionTimestamp'] and still['finalizers'] == ['foregroundDeletion']

    without_finalizers(api, 'held')
    collector()
    assert stored(api, 'held') is None and stored(api, 'owner') is None


def test_background_deletes_dependents_but_honours_their_finalizers(api, collector):
    owner = config_map(api, 'owner')
    config_map(api, 'held', [owner], finalizers=[HOLD])
    config_map(api, 'free', [owner])

    assert api.delete(configmaps(api), 'team', 'owner')[1]
    collector()
    assert stored(api, 'free') is None
    assert stored(api, 'held')['metadata']['deletionTimestamp']
    without_finalizers(api, 'held')
    assert stored(api, 'held') is None


def test_default_policy_is_the_kinds(api):
    jobs = api.registry.get('batch', 'v1', 'jobs')
    template = {'spec': {'restartPolicy': 'Never', 'containers': [{'name': 'c', 'image': 'busybox:1'}]}}
    api.create(jobs, 'team', {'metadata': {'name': 'once'}, 'spec': {'template': template}}, 'test')
    marked, gone = api.delete(jobs, 'team', 'once')
    assert not gone and marked['metadata']['finalizers'] == ['orphan']
    config_map(api, 'plain')
    assert api.delete(configmaps(api), 'team', 'plain')[1]


def test_deleting_again_changes_only_the_collectors_finalizers(api):
    config_map(api, 'owner', finalizers=[HOLD])
    first, _gone = api.delete(configmaps(api), 'team', 'owner', propagation='Foreground')
    assert first['metadata']['finalizers'] == [HOLD, 'foregroundDeletion']
    again, gone = api.delete(configmaps(api), 'team', 'owner', propagation='Foreground')
    assert not gone and again['metadata']['resourceVersion'] == first['metadata']['resourceVersion']
    orphan, _gone = api.delete(configmaps(api), 'team', 'owner', propagation='Orphan')
    assert orphan['metadata']['finalizers'] == [HOLD, 'orphan']
    assert orphan['metadata']['deletionTimestamp'] == first['metadata']['deletionTimestamp']


def test_an_object_being_deleted_takes_no_new_finalizer_but_may_lose_one(api):
    config_map(api, 'x', finalizers=[HOLD])
    api.delete(configmaps(api), 'team', 'x')
    body = api.get(configmaps(api), 'team', 'x')
    body['metadata']['finalizers'] = [HOLD, 'b.example.com/x', 'a.example.com/x']
    with pytest.raises(ApiError) as refused:
        api.replace(configmaps(api), 'team', 'x', body, 'test')
    status = refused.value.status()
    assert status['code'] == 422 and status['message'] == (
        'ConfigMap "x" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the object is '
        'being deleted, found new finalizers []string{"a.example.com/x", "b.example.com/x"}')
    assert status['details']['causes'][0]['reason'] == 'FieldValueForbidden'
    without_finalizers(api, 'x')
    assert stored(api, 'x') is None


def test_preconditions_are_checked_before_anything(api):
    config_map(api, 'x')
    with pytest.raises(ApiError) as refused:
        api.delete(configmaps(api), 'team', 'x', preconditions={'uid': 'nope'})
    status = refused.value.status()
    assert status['code'] == 409 and status['message'].startswith(
        'Operation cannot be fulfilled on ConfigMap "x": the UID in the precondition (nope) does not match the UID '
        'in record (')
    assert status['details']['kind'] == 'ConfigMap'
    with pytest.raises(ApiError) as refused:
        api.delete(configmaps(api), 'team', 'x', preconditions={'resourceVersion': '1'})
    assert 'The object might have been modified' in refused.value.message
    assert stored(api, 'x') is not None


def test_an_object_whose_owner_does_not_exist_is_collected(api, collector):
    owner = config_map(api, 'owner')
    config_map(api, 'real', [owner])
    config_map(api, 'orphan', [dict(owner, metadata=dict(owner['metadata'], uid='no-such-uid'))])
    config_map(api, 'mixed', [owner, dict(owner, metadata=dict(owner['metadata'], name='gone', uid='gone-uid'))])
    collector()
    assert stored(api, 'orphan') is None and stored(api, 'real') is not None
    assert [r['name'] for r in stored(api, 'mixed')['metadata']['ownerReferences']] == ['owner']
