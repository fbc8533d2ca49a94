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


def test_rules_review_lists_what_the_bindings_grant_in_the_namespace(api):
    resource, non_resource = Authorizer(api).rules_for(ACCOUNT, GROUPS, 'team')
    assert {'verbs': ['get', 'list'], 'apiGroups': [''], 'resources': ['pods', 'pods/log']} in resource
    assert {'verbs': ['update'], 'apiGroups': [''], 'resources': ['configmaps'], 'resourceNames': ['settings']} in resource
    assert {'verbs': ['create'], 'apiGroups': ['authorization.k8s.io'],
            'resources': ['selfsubjectaccessreviews', 'selfsubjectrulesreviews']} in resource
    assert any('/version' in rule['nonResourceURLs'] for rule in non_resource)
    elsewhere, _urls = Authorizer(api).rules_for(ACCOUNT, GROUPS, 'default')
    assert not any('pods' in rule['resources'] for rule in elsewhere)
    masters, masters_urls = Authorizer(api).rules_for('admin', ['system:masters', 'system:authenticated'], 'team')
    assert masters[0] == {'verbs': ['*'], 'apiGroups': ['*'], 'resources': ['*']}
    assert masters_urls[0] == {'verbs': ['*'], 'nonResourceURLs': ['*']}


def test_view_reads_but_never_secrets(api):
    binding = {'metadata': {'name': 'bot-views'}, 'roleRef': {'apiGroup': RBAC, 'kind': 'ClusterRole', 'name': 'view'},
               'subjects': [{'kind': 'ServiceAccount', 'name': 'bot', 'namespace': 'team'}]}
    api.create(api.registry.get(RBAC, 'v1', 'rolebindings'), 'team', binding, 'test')
    authorizer = Authorizer(api)
    assert authorizer.allowed(ACCOUNT, GROUPS, 'list', 'apps', 'deployments', 'team', '')
    assert authorizer.allowed(ACCOUNT, GROUPS, 'watch', '', 'configmaps', 'team', '')
    assert not authorizer.allowed(ACCOUNT, GROUPS, 'get', '', 'secrets', 'team', 's')
    assert not authorizer.allowed(ACCOUNT, GROUPS, 'update', '', 'configmaps', 'team', 'settings-2')
