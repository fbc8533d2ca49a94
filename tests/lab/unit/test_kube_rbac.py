"""RBAC decisions of the lab's Kubernetes API, on a real in-memory API (no server)."""

import pytest

from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.api.rbac import Authorizer

RBAC = 'rbac.authorization.k8s.io'
ACCOUNT = 'system:serviceaccount:team:bot'
GROUPS = ['system:serviceaccounts', 'system:serviceaccounts:team', 'system:authenticated']


@pytest.fixture
def api():
    api = KubeApi()
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': 'team'}}, 'test')
    api.create(api.registry.get(RBAC, 'v1', 'roles'), 'team', {'metadata': {'name': 'pods-reader'}, 'rules': [
        {'apiGroups': [''], 'resources': ['pods', 'pods/log'], 'verbs': ['get', 'list']},
        {'apiGroups': [''], 'resources': ['configmaps'], 'resourceNames': ['settings'], 'verbs': ['update']}]},
        'test')
    api.create(api.registry.get(RBAC, 'v1', 'rolebindings'), 'team', {
        'metadata': {'name': 'bot-reads'}, 'roleRef': {'apiGroup': RBAC, 'kind': 'Role', 'name': 'pods-reader'},
        'subjects': [{'kind': 'ServiceAccount', 'name': 'bot', 'namespace': 'team'}]}, 'test')
    return api


@pytest.mark.parametrize('verb, group, resource, namespace, name, allowed', [
    ('list', '', 'pods', 'team', '', True),
    ('get', '', 'pods/log', 'team', 'p', True),
    ('delete', '', 'pods', 'team', 'p', False),
    ('list', '', 'pods', 'default', '', False),
    ('list', 'apps', 'pods', 'team', '', False),
    ('update', '', 'configmaps', 'team', 'settings', True),
    ('update', '', 'configmaps', 'team', 'other', False),
    ('create', 'authorization.k8s.io', 'selfsubjectaccessreviews', '', '', True),
])
def test_role_binding_grants(api, verb, group, resource, namespace, name, allowed):
    assert Authorizer(api).allowed(ACCOUNT, GROUPS, verb, group, resource, namespace, name) is allowed


def test_masters_may_do_anything_and_refusals_say_why(api):
    authorizer = Authorizer(api)
    assert authorizer.allowed('admin', ['system:masters'], 'delete', '', 'nodes', '', 'n')
    with pytest.raises(ApiError) as refused:
        authorizer.check(ACCOUNT, GROUPS, 'list', api.registry.get('', 'v1', 'secrets'), 'team', '', '')
    assert refused.value.code == 403
    assert refused.value.message == ('secrets is forbidden: User "system:serviceaccount:team:bot" cannot list '
                                     'resource "secrets" in API group "" in the namespace "team"')
