"""Deletion propagation and field ownership of the lab's Kubernetes API, through the real kubectl."""

import json

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from kube_helpers import kubectl, scratch_namespace, wait_for

pytestmark = pytest.mark.lab

HOLD = 'lab.example.com/hold'


@pytest.fixture
def namespace(kenv):
    yield from scratch_namespace(client.CoreV1Api(config.new_client_from_config(kenv['KUBECONFIG'])), 'kd')


def get(lab, kenv, namespace, *what, check=True):
    found = kubectl(lab, kenv, 'get', '-n', namespace, *what, '-o', 'json', check=check)
    return json.loads(found.stdout) if found.returncode == 0 else None


def deployment(lab, kenv, namespace, name):
    manifest = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': name}, 'spec': {
        'replicas': 1, 'selector': {'matchLabels': {'app': name}},
        'template': {'metadata': {'labels': {'app': name}},
                     'spec': {'containers': [{'name': 'c', 'image': 'busybox:1'}]}}}}
    kubectl(lab, kenv, 'apply', '--server-side', '-n', namespace, '-f', '-', stdin=yaml.safe_dump(manifest))
    return wait_for(lambda: get(lab, kenv, namespace, 'replicasets', '-l', 'app=' + name)['items'],
                    'the ReplicaSet of ' + name)[0]


def test_cascade_orphan_keeps_the_replica_set(lab, kenv, namespace):
    rs = deployment(lab, kenv, namespace, 'orphaned')
    deleted = kubectl(lab, kenv, 'delete', '-n', namespace, 'deployment/orphaned', '--cascade=orphan', '--timeout=20s')
    assert 'deployment.apps "orphaned" deleted' in deleted.stdout
    assert get(lab, kenv, namespace, 'deployment/orphaned', check=False) is None
    kept = get(lab, kenv, namespace, 'replicaset/' + rs['metadata']['name'])
    assert kept['metadata']['uid'] == rs['metadata']['uid'] and 'ownerReferences' not in kept['metadata']
    pods = get(lab, kenv, namespace, 'pods', '-l', 'app=orphaned')['items']
    assert [p['metadata']['ownerReferences'][0]['name'] for p in pods] == [rs['metadata']['name']]


def test_cascade_foreground_waits_for_a_dependent_with_a_finalizer(lab, kenv, namespace):
    rs = deployment(lab, kenv, namespace, 'held')
    rs_name = 'replicaset/' + rs['metadata']['name']
    kubectl(lab, kenv, 'patch', '-n', namespace, rs_name, '--type=merge', '-p',
            json.dumps({'metadata': {'finalizers': [HOLD]}}))
    kubectl(lab, kenv, 'delete', '-n', namespace, 'deployment/held', '--cascade=foreground', '--wait=false')

    def terminating():
        found = get(lab, kenv, namespace, rs_name, check=False)
        return found if found and found['metadata'].get('deletionTimestamp') else None
    wait_for(terminating, 'the ReplicaSet terminating')
    owner = get(lab, kenv, namespace, 'deployment/held')
    assert owner['metadata']['deletionTimestamp'] and 'foregroundDeletion' in owner['metadata']['finalizers']
    assert wait_for(lambda: not get(lab, kenv, namespace, 'pods', '-l', 'app=held')['items'], 'the pods gone')

    # Being deleted, the Deployment takes no new finalizer.
    refused = kubectl(lab, kenv, 'patch', '-n', namespace, 'deployment/held', '--type=json', '-p', json.dumps(
        [{'op': 'add', 'path': '/metadata/finalizers/-', 'value': HOLD}]), check=False)
    assert refused.returncode != 0 and (
        'metadata.finalizers: Forbidden: no new finalizers can be added if the object is being deleted, found new '
        'finalizers []string{"' + HOLD + '"}') in refused.stderr

    kubectl(lab, kenv, 'patch', '-n', namespace, rs_name, '--type=json', '-p', json.dumps(
        [{'op': 'remove', 'path': '/metadata/finalizers'}]))
    kubectl(lab, kenv, 'wait', '-n', namespace, '--for=delete', 'deployment/held', '--timeout=20s')
    assert get(lab, kenv, namespace, rs_name, check=False) is None


def test_an_empty_map_applied_by_one_manager_keeps_another_managers_fields(lab, kenv, namespace):
    def apply(manager, **fields):
        manifest = dict({'apiVersion': 'v1', 'kind': 'ConfigMap'}, **fields)
        manifest.setdefault('metadata', {'name': 'shared'})
        kubectl(lab, kenv, 'apply', '--server-side', '--field-manager=' + manager, '-n', namespace, '-f', '-',
                stdin=yaml.safe_dump(manifest))
        return get(lab, kenv, namespace, 'configmap/shared')
    apply('one', metadata={'name': 'shared', 'labels': {'team': 'a'}}, data={'key': 'v'})
    apply('two', metadata={'name': 'shared', 'labels': {}}, data={})
    after = apply('two')
    assert after['data'] == {'key': 'v'} and after['metadata']['labels'] == {'team': 'a'}


def test_server_side_apply_after_client_side_apply_removes_a_dropped_field(lab, kenv, namespace):
    def manifest(**data):
        return yaml.safe_dump({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'moved'}, 'data': data})
    kubectl(lab, kenv, 'apply', '-n', namespace, '-f', '-', stdin=manifest(a='1', b='2'))
    kubectl(lab, kenv, 'apply', '--server-side', '-n', namespace, '-f', '-', stdin=manifest(a='1', b='2'))
    managers = {e['manager'] for e in get(lab, kenv, namespace, 'configmap/moved', '--show-managed-fields')[
        'metadata']['managedFields']}
    assert 'kubectl-client-side-apply' not in managers and 'kubectl' in managers
    kubectl(lab, kenv, 'apply', '--server-side', '-n', namespace, '-f', '-', stdin=manifest(a='1'))
    assert get(lab, kenv, namespace, 'configmap/moved')['data'] == {'a': '1'}


def test_delete_options_from_the_python_client(kenv, namespace):
    core = client.CoreV1Api(config.new_client_from_config(kenv['KUBECONFIG']))
    core.create_namespaced_config_map(namespace, {'metadata': {'name': 'opts', 'finalizers': [HOLD]}})
    with pytest.raises(ApiException) as refused:
        core.delete_namespaced_config_map('opts', namespace, body=client.V1DeleteOptions(propagation_policy='Sideways'))
    status = json.loads(refused.value.body)
    assert (status['code'], status['reason']) == (422, 'Invalid') and status['message'] == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": supported '
        'values: "Foreground", "Background", "Orphan", "nil"')
    with pytest.raises(ApiException) as refused:
        core.delete_namespaced_config_map('opts', namespace, dry_run='Bogus')
    assert json.loads(refused.value.body)['message'] == (
        'DeleteOptions.meta.k8s.io "" is invalid: dryRun: Unsupported value: []string{"Bogus"}: supported values: "All"')
    answer = core.api_client.call_api('DELETE', '{0}/api/v1/namespaces/{1}/configmaps/opts'.format(
        core.api_client.configuration.host, namespace), header_params={'Content-Type': 'application/json'},
        body={'orphanDependents': 'yes'})
    answer.read()
    assert answer.status == 400 and json.loads(answer.data)['message'] == (
        'json: cannot unmarshal string into Go struct field DeleteOptions.orphanDependents of type bool')
    with pytest.raises(ApiException) as refused:
        core.delete_namespaced_config_map('opts', namespace, body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid='not-this-one')))
    assert refused.value.status == 409 and 'the UID in the precondition (not-this-one) does not match' in (
        json.loads(refused.value.body)['message'])
    # Without a body the query carries the options: kept by its finalizer, the object answers 200 with itself.
    answer = core.delete_namespaced_config_map('opts', namespace, propagation_policy='Orphan', _preload_content=False)
    body = json.loads(answer.data)
    assert answer.status == 200 and body['metadata']['finalizers'] == [HOLD, 'orphan']
    # Asked to cascade (orphanDependents=false) and still waiting: 202.
    answer = core.delete_namespaced_config_map('opts', namespace, body=client.V1DeleteOptions(
        orphan_dependents=False), _preload_content=False)
    assert answer.status == 202 and json.loads(answer.data)['metadata']['finalizers'] == [HOLD]
    core.patch_namespaced_config_map('opts', namespace, [{'op': 'remove', 'path': '/metadata/finalizers'}])
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map('opts', namespace)
    assert gone.value.status == 404
