"""Flux objects as data: install manifests, cluster variables, dependency order and readiness."""

import base64

import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import flux, kube

MANIFEST = [
    {'apiVersion': 'v1', 'kind': 'Namespace',
     'metadata': {'name': 'flux-system', 'labels': {flux.VERSION_LABEL: 'v2.9.1'}}},
    {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'source-controller',
                                                                 'namespace': 'flux-system'}},
    {'apiVersion': 'rbac.authorization.k8s.io/v1', 'kind': 'ClusterRoleBinding',
     'metadata': {'name': 'cluster-reconciler'},
     'subjects': [{'kind': 'ServiceAccount', 'name': 'kustomize-controller', 'namespace': 'flux-system'}]},
]


def manifest_text(objects=None):
    return yaml.safe_dump_all(objects or MANIFEST)


def test_a_manifest_of_the_pinned_version_loads():
    objects, version = flux.load_manifest(manifest_text(), 'install.yaml', 'v2.9.1')
    assert version == 'v2.9.1'
    assert flux.controller_deployments(objects) == [('flux-system', 'source-controller')]


def test_a_manifest_of_another_version_is_refused_naming_both():
    with pytest.raises(flux.FluxError, match='install.yaml installs Flux v2.9.1, not the pinned version v2.8.0'):
        flux.load_manifest(manifest_text(), 'install.yaml', 'v2.8.0')


@pytest.mark.parametrize('text, message', [
    ('kind: [unclosed', 'is not valid YAML'),
    ('just: a mapping\n', 'every document needs apiVersion and kind'),
    (yaml.safe_dump_all(MANIFEST[1:]), 'it has 0 Namespace objects'),
])
def test_what_is_not_a_flux_manifest_is_refused(text, message):
    with pytest.raises(flux.FluxError, match=message):
        flux.load_manifest(text, 'install.yaml')


def test_another_namespace_moves_every_namespaced_object_and_binding_subject():
    objects, _version = flux.load_manifest(manifest_text(), 'install.yaml', namespace='gitops')
    assert objects[0]['metadata']['name'] == 'gitops'
    assert objects[1]['metadata']['namespace'] == 'gitops'
    assert objects[2]['subjects'][0]['namespace'] == 'gitops'
    assert MANIFEST[1]['metadata']['namespace'] == 'flux-system'


def test_cluster_vars_are_strings_flux_can_substitute_and_watched():
    cm = flux.config_map('cluster-vars', 'flux-system', {'replicas': 2, 'debug': True, 'name': 'lab',
                                                         'pools': ['a', 'b']})
    assert cm['data'] == {'debug': 'true', 'name': 'lab', 'pools': '["a", "b"]', 'replicas': '2'}
    assert cm['metadata']['labels'][flux.WATCH_LABEL] == 'Enabled'


def test_secret_values_are_base64_and_read_back():
    sec = flux.secret('flux-system', 'flux-system', {'password': 't0ken', 'username': 'git'})
    assert base64.b64decode(sec['data']['password']) == b't0ken'
    assert flux.decoded(sec) == {'password': 't0ken', 'username': 'git'}
    assert flux.decoded(None) == {}


def test_the_root_kustomization_substitutes_from_the_vars_and_the_optional_secrets():
    root = flux.root_kustomization('flux-system', 'flux-system', './clusters/lab', '10m', 'cluster-vars',
                                   'cluster-secrets')
    assert root['spec']['postBuild']['substituteFrom'] == [
        {'kind': 'ConfigMap', 'name': 'cluster-vars'},
        {'kind': 'Secret', 'name': 'cluster-secrets', 'optional': True}]
    assert root['spec']['sourceRef'] == {'kind': 'GitRepository', 'name': 'flux-system'}


def kustomization(name, depends=(), ready=True, generation=1, observed=1, revision='main@sha1:1', **status):
    return {'kind': 'Kustomization', 'metadata': {'name': name, 'namespace': 'flux-system', 'generation': generation},
            'spec': {'dependsOn': [{'name': d} for d in depends]},
            'status': dict({'observedGeneration': observed, 'lastAppliedRevision': revision, 'conditions': [
                {'type': 'Ready', 'status': 'True' if ready else 'False',
                 'reason': 'ReconciliationSucceeded' if ready else 'BuildFailed', 'message': 'm-' + name}]},
                **status)}


def test_dependency_order_puts_every_object_after_what_it_depends_on():
    objects = [kustomization('apps', ['instances']), kustomization('configs', ['operators']),
               kustomization('instances', ['configs']), kustomization('operators'), kustomization('blog')]
    assert [o['metadata']['name'] for o in flux.dependency_order(objects)] == [
        'operators', 'configs', 'instances', 'apps', 'blog']


def test_a_cycle_does_not_stop_the_ordering():
    objects = [kustomization('a', ['b']), kustomization('b', ['a'])]
    assert sorted(o['metadata']['name'] for o in flux.dependency_order(objects)) == ['a', 'b']


def test_ready_means_ready_at_the_generation_and_at_the_source_revision():
    assert flux.summary(kustomization('apps'), 'main@sha1:1')['ready']
    stale = flux.summary(kustomization('apps'), 'main@sha1:2')
    assert not stale['ready'] and stale['message'] == 'revision main@sha1:2 not applied yet'
    assert not flux.summary(kustomization('apps', generation=2, observed=1))['ready']
    assert not flux.summary(kustomization('apps'), requested='t1')['ready']
    assert flux.summary(kustomization('apps', lastHandledReconcileAt='t1'), requested='t1')['ready']


def test_the_timeout_message_names_the_object_reason_and_message():
    found = flux.summary(kustomization('apps', ready=False))
    assert flux.describe(found) == 'Kustomization flux-system/apps is not Ready: BuildFailed: m-apps'


def test_comparison_ignores_what_the_server_keeps():
    obj = {'kind': 'ConfigMap', 'metadata': {'name': 'a', 'resourceVersion': '9', 'uid': 'u', 'generation': 1,
                                             'managedFields': []}, 'data': {'k': 'v'}, 'status': {}}
    assert kube.comparable(obj) == {'kind': 'ConfigMap', 'metadata': {'name': 'a'}, 'data': {'k': 'v'}}


def test_secret_values_are_hidden_in_diffs_but_a_change_still_shows():
    one = kube.redacted(flux.secret('s', 'ns', {'token': 'a'}))
    two = kube.redacted(flux.secret('s', 'ns', {'token': 'b'}))
    assert one['data']['token'].startswith(kube.HIDDEN) and 'YQ==' not in str(one)
    assert one['data'] != two['data']


def test_apply_order_puts_crds_then_namespaces_first():
    objects = [{'kind': 'Deployment'}, {'kind': 'Namespace'}, {'kind': 'CustomResourceDefinition'}]
    assert [o['kind'] for o in sorted(objects, key=kube.apply_order)] == [
        'CustomResourceDefinition', 'Namespace', 'Deployment']
