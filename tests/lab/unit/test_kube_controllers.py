"""The lab's controller framework and garbage collector, on a real in-memory API (no server)."""

import asyncio

import pytest

from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.controllers.core import GarbageCollector
from castle_lab.kube.controllers.manager import Controller

RBAC = 'rbac.authorization.k8s.io'


def test_of_two_delayed_requeues_the_earlier_stands():
    async def scenario():
        controller = Controller(KubeApi())
        loop = asyncio.get_running_loop()
        controller.enqueue('k', 'ns', 'a', delay=30)
        controller.enqueue('k', 'ns', 'a', delay=60)  # later than the one waiting: dropped
        first = controller.waiting[('k', 'ns', 'a')]
        assert 29 < first.when() - loop.time() <= 30
        controller.enqueue('k', 'ns', 'a', delay=5)  # earlier: replaces it
        second = controller.waiting[('k', 'ns', 'a')]
        assert first.cancelled() and not second.cancelled() and second.when() - loop.time() <= 5
        controller.enqueue('k', 'ns', 'b', delay=30)
        assert len(controller.waiting) == 2
        # When it is due, the item goes to the queue once and leaves the waiting set.
        controller._due(('k', 'ns', 'a'))
        assert controller.queue.get_nowait() == ('k', 'ns', 'a') and ('k', 'ns', 'a') not in controller.waiting
        for timer in controller.waiting.values():
            timer.cancel()
    asyncio.run(scenario())


@pytest.fixture
def api():
    api = KubeApi()
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': 'team'}}, 'test')
    return api


def owner_ref(obj):
    kind = {'ClusterRole': (RBAC + '/v1', 'ClusterRole')}.get(obj['kind'], ('v1', obj['kind']))
    return {'apiVersion': kind[0], 'kind': kind[1], 'name': obj['metadata']['name'], 'uid': obj['metadata']['uid']}


def config_map(api, name, *owners):
    body = {'metadata': {'name': name, 'ownerReferences': [owner_ref(o) for o in owners]}, 'data': {}}
    return api.create(api.registry.get('', 'v1', 'configmaps'), 'team', body, 'test')


def collect(api, owner):
    meta = owner['metadata']
    GarbageCollector(api).reconcile('owner', meta.get('namespace', ''), meta['uid'])


def names(api):
    return [o['metadata']['name'] for o in api.store.list(api.registry.get('', 'v1', 'configmaps').key, 'team')]


def test_dependents_of_a_cluster_scoped_owner_go_once_no_owner_is_left(api):
    roles = api.registry.get(RBAC, 'v1', 'clusterroles')
    role = api.create(roles, None, {'metadata': {'name': 'owner'}, 'rules': []}, 'test')
    keeper = config_map(api, 'keeper')
    config_map(api, 'only-role', role)
    config_map(api, 'role-and-keeper', role, keeper)
    config_map(api, 'free')

    api.delete(roles, None, 'owner')
    collect(api, role)
    assert names(api) == ['free', 'keeper', 'role-and-keeper']

    api.delete(api.registry.get('', 'v1', 'configmaps'), 'team', 'keeper')
    collect(api, keeper)
    assert names(api) == ['free']


def test_an_owner_of_the_same_name_but_another_uid_does_not_keep_a_dependent(api):
    roles = api.registry.get(RBAC, 'v1', 'clusterroles')
    first = api.create(roles, None, {'metadata': {'name': 'owner'}, 'rules': []}, 'test')
    keeper = config_map(api, 'keeper')
    config_map(api, 'both', first, keeper)
    api.delete(roles, None, 'owner')
    api.create(roles, None, {'metadata': {'name': 'owner'}, 'rules': []}, 'test')  # recreated: a new uid
    api.delete(api.registry.get('', 'v1', 'configmaps'), 'team', 'keeper')
    collect(api, keeper)
    assert names(api) == []
