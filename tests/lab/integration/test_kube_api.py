"""The lab's Kubernetes API emulator, driven by kubectl, the kubernetes Python client and kubernetes.core."""

import json
import os

import pytest
import requests
import yaml
from kubernetes import client, dynamic, watch
from kubernetes.client.rest import ApiException
from urllib3.exceptions import MaxRetryError, ReadTimeoutError

from kube_helpers import kubectl, scratch_namespace, wait_for

pytestmark = pytest.mark.lab

CRD = {
    'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
    'metadata': {'name': 'gadgets.lab.example.com'},
    'spec': {'group': 'lab.example.com', 'scope': 'Namespaced',
             'names': {'plural': 'gadgets', 'singular': 'gadget', 'kind': 'Gadget', 'shortNames': ['gd']},
             'versions': [{'name': 'v1', 'served': True, 'storage': True, 'subresources': {'status': {}},
                           'schema': {'openAPIV3Schema': {'type': 'object', 'properties': {
                               'spec': {'type': 'object', 'required': ['size'], 'properties': {
                                   'size': {'type': 'integer', 'minimum': 0},
                                   'port': {'x-kubernetes-int-or-string': True},
                                   'note': {'type': 'string', 'nullable': True},
                                   'extra': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True},
                                   'parts': {'type': 'array', 'x-kubernetes-list-type': 'map',
                                             'x-kubernetes-list-map-keys': ['name'], 'items': {
                                                 'type': 'object', 'required': ['name'],
                                                 'properties': {'name': {'type': 'string'},
                                                                'count': {'type': 'integer'}}}}}},
                               'status': {'type': 'object', 'properties': {'ready': {'type': 'boolean'}}}}}}}]}}


@pytest.fixture
def namespace(core):
    yield from scratch_namespace(core, 'kt')


@pytest.fixture(scope='module')
def gadgets(dyn):
    """The Gadget CRD, established, and its resource through the DynamicClient."""
    crds = dyn.resources.get(api_version='apiextensions.k8s.io/v1', kind='CustomResourceDefinition')
    crds.server_side_apply(body=CRD, field_manager='pytest')
    wait_for(lambda: _established(crds.get(name=CRD['metadata']['name'])), 'CRD established')
    dyn.resources.invalidate_cache()
    return dyn.resources.get(api_version='lab.example.com/v1', kind='Gadget')


def _established(crd):
    return {c['type'] for c in (crd.status.conditions or []) if c['status'] == 'True'} >= {'Established',
                                                                                           'NamesAccepted'}


def test_unauthenticated_requests_get_401_with_a_status(lab, kenv):
    server = yaml.safe_load(open(kenv['KUBECONFIG']))['clusters'][0]['cluster']['server']
    answer = requests.get(server + '/api/v1/namespaces', verify=str(lab.dir / 'kube' / 'ca.crt'), timeout=5)
    assert answer.status_code == 401
    body = answer.json()
    assert (body['kind'], body['status'], body['reason'], body['code']) == ('Status', 'Failure', 'Unauthorized', 401)
    assert oct(os.stat(kenv['KUBECONFIG']).st_mode & 0o777) == '0o600'


def test_discovery_and_default_namespaces(core, api_client):
    names = {ns.metadata.name for ns in core.list_namespace().items}
    assert {'default', 'kube-system', 'kube-public', 'kube-node-lease'} <= names
    version = client.VersionApi(api_client).get_code()
    assert version.major == '1' and version.git_version.startswith('v1.')
    apps = client.AppsV1Api(api_client).get_api_resources()
    deployments = next(r for r in apps.resources if r.name == 'deployments')
    assert deployments.kind == 'Deployment' and deployments.namespaced and 'deploy' in deployments.short_names
    assert 'deployments/status' in {r.name for r in apps.resources}


def test_kubectl_server_side_apply_get_wait_delete(lab, kenv, namespace, gadgets):
    manifests = [
        {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'settings', 'labels': {'tier': 'web'}},
         'data': {'mode': 'fast'}},
        {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'web'},
         'spec': {'replicas': 2, 'selector': {'matchLabels': {'app': 'web'}},
                  'template': {'metadata': {'labels': {'app': 'web'}},
                               'spec': {'containers': [{'name': 'web', 'image': 'nginx:1.29'}]}}}},
        {'apiVersion': 'lab.example.com/v1', 'kind': 'Gadget', 'metadata': {'name': 'g1'}, 'spec': {'size': 3}}]
    text = yaml.safe_dump_all(manifests)
    applied = kubectl(lab, kenv, 'apply', '--server-side', '-n', namespace, '-f', '-', stdin=text)
    assert 'deployment.apps/web serverside-applied' in applied.stdout
    got = yaml.safe_load(kubectl(lab, kenv, 'get', '-n', namespace, 'configmap', 'settings', '-o', 'yaml').stdout)
    assert got['data'] == {'mode': 'fast'} and got['metadata']['resourceVersion']
    kubectl(lab, kenv, 'wait', '-n', namespace, '--for=condition=Available', 'deployment/web', '--timeout=20s')
    kubectl(lab, kenv, 'rollout', 'status', '-n', namespace, 'deployment/web', '--timeout=20s')
    kubectl(lab, kenv, 'scale', '-n', namespace, 'deployment/web', '--replicas=1')
    kubectl(lab, kenv, 'wait', '-n', namespace, '--for=jsonpath={.status.readyReplicas}=1', 'deployment/web',
            '--timeout=20s')
    gadget = yaml.safe_load(kubectl(lab, kenv, 'get', '-n', namespace, 'gd', 'g1', '-o', 'yaml').stdout)
    assert gadget['spec'] == {'size': 3}
    # `kubectl scale` took .spec.replicas through the scale subresource: applying the old count conflicts.
    refused = kubectl(lab, kenv, 'apply', '--server-side', '-n', namespace, '-f', '-', stdin=text, check=False)
    assert refused.returncode == 1 and ('Apply failed with 1 conflict: conflict with "kubectl" with subresource '
                                        '"scale" using apps/v1: .spec.replicas') in refused.stderr
    again = kubectl(lab, kenv, 'apply', '--server-side', '--force-conflicts', '-n', namespace, '-f', '-', stdin=text)
    assert 'serverside-applied' in again.stdout
    kubectl(lab, kenv, 'delete', '-n', namespace, 'deployment/web', 'configmap/settings', 'gadget/g1')
    left = kubectl(lab, kenv, 'get', '-n', namespace, 'deployments,configmaps,gadgets', '-o', 'name').stdout
    assert left.split() == ['configmap/kube-root-ca.crt']


def test_kubectl_client_side_apply_and_diff(lab, kenv, namespace):
    def manifest(replicas):
        return yaml.safe_dump({'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'csa'}, 'spec': {
            'replicas': replicas, 'selector': {'matchLabels': {'app': 'csa'}},
            'template': {'metadata': {'labels': {'app': 'csa'}},
                         'spec': {'containers': [{'name': 'c', 'image': 'busybox:1'}]}}}})
    assert 'created' in kubectl(lab, kenv, 'apply', '-n', namespace, '-f', '-', stdin=manifest(1)).stdout
    assert kubectl(lab, kenv, 'diff', '-n', namespace, '-f', '-', stdin=manifest(1)).returncode == 0
    changed = kubectl(lab, kenv, 'diff', '-n', namespace, '-f', '-', stdin=manifest(3), check=False)
    assert changed.returncode == 1 and '+  replicas: 3' in changed.stdout
    assert 'configured' in kubectl(lab, kenv, 'apply', '-n', namespace, '-f', '-', stdin=manifest(3)).stdout
    got = json.loads(kubectl(lab, kenv, 'get', '-n', namespace, 'deployment', 'csa', '-o', 'json').stdout)
    assert got['spec']['replicas'] == 3 and got['metadata']['generation'] == 2


def test_kubectl_create_from_a_file(lab, kenv, namespace):
    secret = {'apiVersion': 'v1', 'kind': 'Secret', 'metadata': {'name': 'creds'}, 'stringData': {'user': 'claw'}}
    kubectl(lab, kenv, 'create', '-n', namespace, '-f', '-', stdin=json.dumps(secret))
    got = json.loads(kubectl(lab, kenv, 'get', '-n', namespace, 'secret', 'creds', '-o', 'json').stdout)
    assert got['data'] == {'user': 'Y2xhdw=='} and 'stringData' not in got and got['type'] == 'Opaque'
    twice = kubectl(lab, kenv, 'create', '-n', namespace, '-f', '-', stdin=json.dumps(secret), check=False)
    assert twice.returncode != 0 and 'AlreadyExists' in twice.stderr


def test_kubectl_imperative_creates_send_protobuf(lab, kenv, namespace, core):
    kubectl(lab, kenv, 'create', 'configmap', 'plain', '-n', namespace, '--from-literal=a=b')
    kubectl(lab, kenv, 'create', 'secret', 'generic', 'pw', '-n', namespace, '--from-literal=pw=s3cret')
    kubectl(lab, kenv, 'create', 'serviceaccount', 'bot', '-n', namespace)
    token = kubectl(lab, kenv, 'create', 'token', 'bot', '-n', namespace).stdout.strip()
    assert token.count('.') == 2
    assert core.read_namespaced_config_map('plain', namespace).data == {'a': 'b'}
    assert core.read_namespaced_secret('pw', namespace).data == {'pw': 'czNjcmV0'}


def test_core_v1_crud_and_stale_resource_version(core, namespace):
    body = {'metadata': {'name': 'cm', 'labels': {'app': 'a', 'tier': 'web'}}, 'data': {'k': 'v'}}
    created = core.create_namespaced_config_map(namespace, body)
    assert created.metadata.uid and created.metadata.resource_version
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map(namespace, body)
    assert exists.value.status == 409 and json.loads(exists.value.body)['reason'] == 'AlreadyExists'
    created.data['k'] = 'v2'
    replaced = core.replace_namespaced_config_map('cm', namespace, created)
    assert int(replaced.metadata.resource_version) > int(created.metadata.resource_version)
    created.data['k'] = 'stale'
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map('cm', namespace, created)
    assert stale.value.status == 409 and json.loads(stale.value.body)['reason'] == 'Conflict'
    core.create_namespaced_config_map(namespace, {'metadata': {'name': 'other', 'labels': {'app': 'b'}}})
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector='app=a').items] == ['cm']
    assert [c.metadata.name for c in core.list_namespaced_config_map(
        namespace, label_selector='app in (a, b),tier').items] == ['cm']
    assert [c.metadata.name for c in core.list_namespaced_config_map(namespace, label_selector='app,!tier').items] == [
        'other']
    assert [c.metadata.name for c in core.list_config_map_for_all_namespaces(
        field_selector='metadata.name=other,metadata.namespace={0}'.format(namespace)).items] == ['other']
    core.create_namespaced_event(namespace, {'metadata': {'name': 'cm.1'}, 'reason': 'Seen', 'type': 'Normal',
                                             'involvedObject': {'kind': 'ConfigMap', 'name': 'cm',
                                                                'uid': created.metadata.uid}})
    about = core.list_namespaced_event(namespace, field_selector='involvedObject.kind=ConfigMap,involvedObject.uid='
                                       + created.metadata.uid)
    assert [e.reason for e in about.items] == ['Seen']
    dry = core.patch_namespaced_config_map('cm', namespace, {'data': {'k': 'dry'}}, dry_run='All')
    assert dry.data['k'] == 'dry'
    assert core.read_namespaced_config_map('cm', namespace).data['k'] == 'v2'
    core.delete_namespaced_config_map('cm', namespace)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_config_map('cm', namespace)
    status = json.loads(gone.value.body)
    assert (gone.value.status, status['reason'], status['details']['name']) == (404, 'NotFound', 'cm')


def test_invalid_name_is_422(core, namespace):
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_config_map(namespace, {'metadata': {'name': 'Not_Valid'}})
    status = json.loads(invalid.value.body)
    assert invalid.value.status == 422 and status['reason'] == 'Invalid'
    assert status['details']['causes'][0]['field'] == 'metadata.name'


@pytest.mark.parametrize('spec, field, message', [
    ({'resources': {'requests': {'storage': '1Gi'}}}, 'spec.accessModes', 'at least 1 access mode is required'),
    ({'accessModes': ['ReadWriteAlways'], 'resources': {'requests': {'storage': '1Gi'}}}, 'spec.accessModes',
     'Unsupported value: "ReadWriteAlways"'),
    ({'accessModes': ['ReadWriteOnce']}, 'spec.resources[storage]', 'Required value'),
    ({'accessModes': ['ReadWriteOnce'], 'resources': {'requests': {'storage': '0Gi'}}}, 'spec.resources[storage]',
     'must be greater than zero'),
])
def test_claims_without_access_modes_or_storage_are_422(core, namespace, spec, field, message):
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_persistent_volume_claim(namespace, {'metadata': {'name': 'claim'}, 'spec': spec})
    status = json.loads(invalid.value.body)
    assert invalid.value.status == 422
    assert [(c['field'], message in c['message']) for c in status['details']['causes']] == [(field, True)]
    assert not core.list_namespaced_persistent_volume_claim(namespace).items


def test_patches_through_the_dynamic_client(dyn, namespace):
    deployments = dyn.resources.get(api_version='apps/v1', kind='Deployment')
    body = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'api', 'namespace': namespace},
            'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': 'api'}},
                     'template': {'metadata': {'labels': {'app': 'api'}}, 'spec': {'containers': [
                         {'name': 'api', 'image': 'api:1', 'env': [{'name': 'A', 'value': '1'}]},
                         {'name': 'sidecar', 'image': 'side:1'}]}}}}
    created = deployments.create(body=body)
    assert created.metadata.generation == 1
    listed = deployments.get(namespace=namespace)
    assert [d.metadata.name for d in listed.items] == ['api']
    patched = deployments.patch(name='api', namespace=namespace, content_type='application/strategic-merge-patch+json',
                                body={'spec': {'template': {'spec': {'containers': [
                                    {'name': 'api', 'image': 'api:2', 'env': [{'name': 'B', 'value': '2'}]}]}}}})
    containers = patched.to_dict()['spec']['template']['spec']['containers']
    assert [(c['name'], c['image']) for c in containers] == [('api', 'api:2'), ('sidecar', 'side:1')]
    assert [e['name'] for e in containers[0]['env']] == ['A', 'B']
    assert patched.metadata.generation == 2
    merged = deployments.patch(name='api', namespace=namespace, content_type='application/merge-patch+json',
                               body={'metadata': {'labels': {'team': 'claw'}}})
    assert merged.metadata.labels.to_dict() == {'team': 'claw'} and merged.metadata.generation == 2
    jsoned = deployments.patch(name='api', namespace=namespace, content_type='application/json-patch+json',
                               body=[{'op': 'replace', 'path': '/spec/replicas', 'value': 3}])
    assert jsoned.spec.replicas == 3
    annotation = {'apiVersion': 'apps/v1', 'kind': 'Deployment',
                  'metadata': {'name': 'api', 'namespace': namespace, 'annotations': {'by': 'apply'}}}
    applied = deployments.server_side_apply(body=annotation, field_manager='annotator')
    # The deployment controller's revision annotation stays beside the applied one.
    annotations = applied.metadata.annotations.to_dict()
    assert annotations.pop('deployment.kubernetes.io/revision') in ('1', '2') and annotations == {'by': 'apply'}
    assert applied.spec.replicas == 3
    managers = {m['manager']: m['operation'] for m in applied.to_dict()['metadata']['managedFields']}
    assert managers['annotator'] == 'Apply'
    wait_for(lambda: deployments.get(name='api', namespace=namespace).status.availableReplicas == 3,
             'deployment available')


def test_server_side_apply_conflict_and_force(dyn, namespace):
    configmaps = dyn.resources.get(api_version='v1', kind='ConfigMap')
    body = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'owned', 'namespace': namespace},
            'data': {'color': 'blue', 'size': 'm'}}
    created = configmaps.server_side_apply(body=body, field_manager='first')
    assert created.data.color == 'blue'
    rival = dict(body, data={'color': 'red'})
    with pytest.raises(dynamic.exceptions.ConflictError) as conflict:
        configmaps.server_side_apply(body=rival, field_manager='second')
    status = json.loads(conflict.value.body)
    assert status['reason'] == 'Conflict'
    assert [c['field'] for c in status['details']['causes']] == ['.data.color']
    assert 'first' in status['details']['causes'][0]['message']
    forced = configmaps.server_side_apply(body=rival, field_manager='second', force_conflicts=True)
    assert forced.data.color == 'red' and forced.data.size == 'm'
    owners = {m['manager']: m['fieldsV1'] for m in forced.to_dict()['metadata']['managedFields']}
    assert owners['second'] == {'f:data': {'f:color': {}}}
    assert owners['first'] == {'f:data': {'f:size': {}}}
    # Applying a value a field already has makes a manager its co-owner, without a conflict.
    shared = configmaps.server_side_apply(body=rival, field_manager='third')
    assert {m['manager']: m['fieldsV1'] for m in shared.to_dict()['metadata']['managedFields']}['third'] == {
        'f:data': {'f:color': {}}}
    # The first manager no longer applying `size` removes it, as nobody else owns it.
    shrunk = configmaps.server_side_apply(body=dict(body, data={}), field_manager='first')
    assert shrunk.data.to_dict() == {'color': 'red'}


def test_custom_resources_watch_validate_status(dyn, gadgets, namespace):
    stream = watch.Watch()
    events = []
    first = gadgets.create(namespace=namespace, body={
        'apiVersion': 'lab.example.com/v1', 'kind': 'Gadget', 'metadata': {'name': 'a'},
        'spec': {'size': 1, 'port': 'http', 'note': None, 'junk': 1}, 'status': {'ready': True}})
    assert 'junk' not in first.spec and first.status is None
    gadgets.patch(namespace=namespace, name='a', body={'spec': {'size': 2}},
                  content_type='application/merge-patch+json')
    gadgets.delete(namespace=namespace, name='a')
    for event in stream.stream(client.CustomObjectsApi(dyn.client).list_namespaced_custom_object,
                               'lab.example.com', 'v1', namespace, 'gadgets',
                               resource_version=str(int(first.metadata.resourceVersion) - 1), timeout_seconds=5):
        events.append((event['type'], event['object']['spec']['size']))
        if event['type'] == 'DELETED':
            stream.stop()
    assert events == [('ADDED', 1), ('MODIFIED', 2), ('DELETED', 2)]
    with pytest.raises(dynamic.exceptions.UnprocessibleEntityError) as invalid:
        gadgets.create(namespace=namespace, body={'apiVersion': 'lab.example.com/v1', 'kind': 'Gadget',
                                                  'metadata': {'name': 'b'}, 'spec': {'size': 'big'}})
    status = json.loads(invalid.value.body)
    assert status['reason'] == 'Invalid' and status['details']['causes'][0]['field'] == 'spec.size'
    gadgets.create(namespace=namespace, body={'apiVersion': 'lab.example.com/v1', 'kind': 'Gadget',
                                              'metadata': {'name': 'c'}, 'spec': {'size': 5}})
    ready = gadgets.status.patch(namespace=namespace, name='c', body={'status': {'ready': True}, 'spec': {'size': 9}},
                                 content_type='application/merge-patch+json')
    assert ready.status.ready is True and ready.spec.size == 5 and ready.metadata.generation == 1


def test_new_namespaces_get_a_default_service_account_and_the_ca(core, namespace):
    wait_for(lambda: core.list_namespaced_service_account(namespace, field_selector='metadata.name=default').items,
             'default ServiceAccount')
    ca = wait_for(lambda: core.list_namespaced_config_map(namespace, field_selector='metadata.name=kube-root-ca.crt')
                  .items, 'kube-root-ca.crt')
    assert ca[0].data['ca.crt'].startswith('-----BEGIN CERTIFICATE-----')


def test_namespace_deletion_removes_its_objects(core, namespace):
    core.create_namespaced_config_map(namespace, {'metadata': {'name': 'doomed'}})
    core.delete_namespace(namespace)

    def gone():
        try:
            core.read_namespace(namespace)
        except ApiException as exc:
            return exc.status == 404
        return False
    wait_for(gone, 'namespace removal')
    assert core.list_config_map_for_all_namespaces(field_selector='metadata.namespace=' + namespace).items == []


def test_service_account_token_and_token_review(api_client, core, namespace):
    core.create_namespaced_service_account(namespace, {'metadata': {'name': 'robot'}})
    issued = core.create_namespaced_service_account_token('robot', namespace, {'spec': {'expirationSeconds': 600}})
    token = issued.status.token
    review = client.AuthenticationV1Api(api_client).create_token_review({'spec': {'token': token}})
    assert review.status.authenticated
    assert review.status.user.username == 'system:serviceaccount:{0}:robot'.format(namespace)
    server = api_client.configuration.host
    answer = requests.get(server + '/api/v1/namespaces/' + namespace, headers={'Authorization': 'Bearer ' + token},
                          verify=api_client.configuration.ssl_ca_cert, timeout=5)
    # Authenticated as the account, which no binding lets read namespaces.
    assert answer.status_code == 403
    assert 'User "system:serviceaccount:{0}:robot"'.format(namespace) in answer.json()['message']
    forged = requests.get(server + '/api/v1/namespaces', headers={'Authorization': 'Bearer ' + token[:-4] + 'AAAA'},
                          verify=api_client.configuration.ssl_ca_cert, timeout=5)
    assert forged.status_code == 401


def test_rbac_grants_a_service_account_what_its_bindings_say(api_client, core, namespace):
    core.create_namespaced_service_account(namespace, {'metadata': {'name': 'reader'}})
    token = core.create_namespaced_service_account_token('reader', namespace, {'spec': {}}).status.token
    settings = client.Configuration()
    settings.host, settings.ssl_ca_cert = api_client.configuration.host, api_client.configuration.ssl_ca_cert
    settings.api_key = {'authorization': 'Bearer ' + token}
    as_reader = client.CoreV1Api(client.ApiClient(settings))
    with pytest.raises(ApiException) as forbidden:
        as_reader.list_namespaced_config_map(namespace)
    status = json.loads(forbidden.value.body)
    assert (forbidden.value.status, status['reason']) == (403, 'Forbidden')
    assert status['message'] == ('configmaps is forbidden: User "system:serviceaccount:{0}:reader" cannot list '
                                 'resource "configmaps" in API group "" in the namespace "{0}"'.format(namespace))
    client.RbacAuthorizationV1Api(api_client).create_namespaced_role_binding(namespace, {
        'metadata': {'name': 'reader-view'},
        'roleRef': {'apiGroup': 'rbac.authorization.k8s.io', 'kind': 'ClusterRole', 'name': 'view'},
        'subjects': [{'kind': 'ServiceAccount', 'name': 'reader', 'namespace': namespace}]})
    assert as_reader.list_namespaced_config_map(namespace, label_selector='app=none').items == []
    with pytest.raises(ApiException) as still:
        as_reader.create_namespaced_config_map(namespace, {'metadata': {'name': 'nope'}})
    assert still.value.status == 403
    with pytest.raises(ApiException) as elsewhere:
        as_reader.list_namespace()
    assert elsewhere.value.status == 403


def test_kubernetes_core_modules(lab, kenv, namespace):
    definition = {'apiVersion': 'v1', 'kind': 'ConfigMap',
                  'metadata': {'name': 'from-ansible', 'namespace': namespace}, 'data': {'a': '1'}}
    args = json.dumps({'kubeconfig': kenv['KUBECONFIG'], 'state': 'present', 'definition': definition})

    def k8s(module, module_args):
        out = lab.run('ansible', 'localhost', '-m', module, '-a', module_args, env=kenv).stdout
        return json.loads(out.split('=>', 1)[1])
    assert k8s('kubernetes.core.k8s', args)['changed'] is True
    assert k8s('kubernetes.core.k8s', args)['changed'] is False
    applied = json.dumps({'kubeconfig': kenv['KUBECONFIG'], 'definition': dict(definition, data={'a': '2'}),
                          'server_side_apply': {'field_manager': 'ansible', 'force_conflicts': True}})
    assert k8s('kubernetes.core.k8s', applied)['changed'] is True
    assert k8s('kubernetes.core.k8s', applied)['changed'] is False
    info = k8s('kubernetes.core.k8s_info', json.dumps({'kubeconfig': kenv['KUBECONFIG'], 'kind': 'ConfigMap',
                                                       'namespace': namespace, 'name': 'from-ansible'}))
    assert [r['data'] for r in info['resources']] == [{'a': '2'}]
    deployment = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'waited', 'namespace': namespace},
                  'spec': {'replicas': 2, 'selector': {'matchLabels': {'app': 'waited'}},
                           'template': {'metadata': {'labels': {'app': 'waited'}},
                                        'spec': {'containers': [{'name': 'app', 'image': 'nginx:1.27'}]}}}}
    waited = k8s('kubernetes.core.k8s', json.dumps({
        'kubeconfig': kenv['KUBECONFIG'], 'definition': deployment, 'wait': True, 'wait_timeout': 60,
        'wait_condition': {'type': 'Available', 'status': 'True'}}))
    assert waited['changed'] is True
    assert waited['result']['status']['readyReplicas'] == 2
    found = k8s('kubernetes.core.k8s_info', json.dumps({
        'kubeconfig': kenv['KUBECONFIG'], 'kind': 'Deployment', 'namespace': namespace,
        'label_selectors': [], 'wait': True, 'wait_condition': {'type': 'Available'}}))
    assert [d['metadata']['name'] for d in found['resources']] == ['waited']


def test_fault_injection_answers_errors_then_recovers(core, kenv, namespace):
    control = kenv['CASTLE_LAB_KUBE_CONTROL']
    rule = requests.post(control + '/fault', json={'method': 'GET', 'path': '/namespaces/' + namespace + '/configmaps',
                                                   'status': 503, 'message': 'injected', 'times': 2}, timeout=5)
    assert rule.status_code == 200
    for _attempt in range(2):
        with pytest.raises(ApiException) as failed:
            core.list_namespaced_config_map(namespace)
        assert failed.value.status == 503
    assert core.list_namespaced_config_map(namespace, label_selector='app=none').items == []


def test_fault_injection_holds_an_answer_back(core, kenv, namespace):
    control = kenv['CASTLE_LAB_KUBE_CONTROL']
    requests.post(control + '/fault', json={'path': '/namespaces/' + namespace + '/secrets', 'hang_secs': 3},
                  timeout=5).raise_for_status()
    # The client may retry a timed-out read: every attempt hangs until the rule is cleared.
    with pytest.raises((ReadTimeoutError, MaxRetryError)):
        core.list_namespaced_secret(namespace, _request_timeout=0.5)
    assert requests.delete(control + '/fault', timeout=5).json() == {'cleared': 1}
    assert core.list_namespaced_secret(namespace, label_selector='app=none').items == []


def _pods(core, namespace, selector):
    return core.list_namespaced_pod(namespace, label_selector=selector).items


def test_deployments_run_pods_through_replica_sets(api_client, core, namespace):
    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, {
        'metadata': {'name': 'pods'}, 'spec': {'replicas': 2, 'selector': {'matchLabels': {'app': 'pods'}},
                                               'template': {'metadata': {'labels': {'app': 'pods'}}, 'spec': {
                                                   'containers': [{'name': 'c', 'image': 'busybox:1'}]}}}})
    pods = wait_for(lambda: [p for p in _pods(core, namespace, 'app=pods') if p.status.phase == 'Running'],
                    'running pods')
    assert len(pods) == 2 and pods[0].spec.node_name == 'castle-lab-node'
    assert {c.type for c in pods[0].status.conditions if c.status == 'True'} >= {'Ready', 'ContainersReady'}
    owner = pods[0].metadata.owner_references[0]
    assert owner.kind == 'ReplicaSet' and apps.read_namespaced_replica_set(owner.name, namespace).status.ready_replicas == 2
    assert core.read_namespaced_pod_log(pods[0].metadata.name, namespace) == ''
    core.delete_namespaced_pod(pods[0].metadata.name, namespace)
    wait_for(lambda: {p.metadata.name for p in _pods(core, namespace, 'app=pods')} - {pods[0].metadata.name}
             and len(_pods(core, namespace, 'app=pods')) == 2, 'a replacement pod')
    scaled = apps.patch_namespaced_deployment_scale('pods', namespace, {'spec': {'replicas': 3}})
    assert (scaled.spec.replicas, scaled.status.selector) == (3, 'app=pods')
    wait_for(lambda: len(_pods(core, namespace, 'app=pods')) == 3, 'a third pod')
    apps.delete_namespaced_deployment('pods', namespace)
    wait_for(lambda: not _pods(core, namespace, 'app=pods'), 'pods collected with their deployment')
    assert apps.list_namespaced_replica_set(namespace).items == []


def test_helm_install_waits_for_a_chart(lab, kenv, namespace, tmp_path):
    chart = tmp_path / 'chart'
    lab.run('helm', 'create', str(chart), env=kenv)
    lab.run('helm', 'install', 'demo', str(chart), '--namespace', namespace, '--wait', '--timeout', '60s', env=kenv)
    listed = json.loads(lab.run('helm', 'list', '--namespace', namespace, '-o', 'json', env=kenv).stdout)
    assert [(r['name'], r['status']) for r in listed] == [('demo', 'deployed')]
    lab.run('helm', 'uninstall', 'demo', '--namespace', namespace, '--wait', env=kenv)


def test_kubectl_auth_impersonation_and_imperative_rbac(lab, kenv, namespace):
    account = 'system:serviceaccount:{0}:default'.format(namespace)
    whoami = kubectl(lab, kenv, 'auth', 'whoami', '--as', 'alice', '--as-group', 'devs', '-o', 'json').stdout
    assert json.loads(whoami)['status']['userInfo'] == {'username': 'alice', 'groups': ['devs', 'system:authenticated']}
    assert kubectl(lab, kenv, 'auth', 'can-i', 'delete', 'nodes').stdout.strip() == 'yes'
    can_i = ('auth', 'can-i', 'list', 'configmaps', '-n', namespace, '--as', account)
    assert kubectl(lab, kenv, *can_i, check=False).stdout.strip() == 'no'
    kubectl(lab, kenv, 'create', 'rolebinding', 'viewers', '-n', namespace, '--clusterrole', 'view',
            '--serviceaccount', '{0}:default'.format(namespace))
    assert kubectl(lab, kenv, *can_i).stdout.strip() == 'yes'
    # `view` reads everything but Secrets.
    secrets = ('auth', 'can-i', 'list', 'secrets', '-n', namespace, '--as', account)
    assert kubectl(lab, kenv, *secrets, check=False).stdout.strip() == 'no'
    assert kubectl(lab, kenv, 'get', 'configmaps', '-n', namespace, '--as', account, '-o', 'name').returncode == 0
    refused = kubectl(lab, kenv, 'get', 'configmaps', '-n', 'kube-system', '--as', account, check=False)
    assert refused.returncode != 0 and 'forbidden' in refused.stderr
    # `can-i --list` is a SelfSubjectRulesReview: the namespace's grants, and none elsewhere.
    listed = kubectl(lab, kenv, 'auth', 'can-i', '--list', '-n', namespace, '--as', account).stdout
    rows = [line.split() for line in listed.splitlines()]
    assert any(row[0] == 'configmaps' and '[get' in ' '.join(row) for row in rows), listed
    assert any(row[0] == '[/version]' for row in rows), listed
    elsewhere = kubectl(lab, kenv, 'auth', 'can-i', '--list', '-n', 'kube-system', '--as', account).stdout
    assert not any(line.startswith('configmaps ') for line in elsewhere.splitlines()), elsewhere


def test_lists_come_in_pages(core, namespace):
    for index in range(5):
        meta = {'name': 'page-{0}'.format(index), 'labels': {'paged': 'yes'}}
        core.create_namespaced_config_map(namespace, {'metadata': meta})
    seen, token = [], None
    while True:
        page = core.list_namespaced_config_map(namespace, label_selector='paged', limit=2, _continue=token)
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
        assert page.metadata.remaining_item_count == 5 - len(seen)
    assert seen == ['page-{0}'.format(i) for i in range(5)]


def test_a_quiet_watch_gets_bookmarks(core, namespace):
    stream = watch.Watch()
    start = core.list_namespaced_config_map(namespace).metadata.resource_version
    kinds = []
    for event in stream.stream(core.list_namespaced_config_map, namespace, label_selector='app=quiet',
                               resource_version=start, allow_watch_bookmarks=True, timeout_seconds=8):
        kinds.append(event['type'])
        if event['type'] == 'BOOKMARK':
            stream.stop()
    assert kinds == ['BOOKMARK']


def test_deleting_a_crd_removes_its_resource_and_objects(lab, kenv, namespace, api_client):
    crd = json.loads(json.dumps(CRD).replace('gadget', 'gizmo').replace('Gadget', 'Gizmo'))
    crd['spec']['names']['shortNames'] = ['gz']
    extensions = client.ApiextensionsV1Api(api_client)
    extensions.create_custom_resource_definition(crd)
    custom = client.CustomObjectsApi(api_client)

    def served():
        try:
            return custom.list_namespaced_custom_object('lab.example.com', 'v1', namespace, 'gizmos')
        except ApiException as exc:
            assert exc.status == 404
            return None
    wait_for(served, 'gizmos served')
    custom.create_namespaced_custom_object('lab.example.com', 'v1', namespace, 'gizmos', {
        'apiVersion': 'lab.example.com/v1', 'kind': 'Gizmo', 'metadata': {'name': 'z'}, 'spec': {'size': 1}})
    kubectl(lab, kenv, 'delete', 'crd', 'gizmos.lab.example.com', '--wait=true', '--timeout=20s')
    with pytest.raises(ApiException) as gone:
        custom.list_namespaced_custom_object('lab.example.com', 'v1', namespace, 'gizmos')
    assert gone.value.status == 404
    resources = client.ApisApi(api_client).get_api_versions()
    assert 'lab.example.com' in {g.name for g in resources.groups}
    assert 'gizmos' not in {r.name for r in custom.get_api_resources('lab.example.com', 'v1').resources}


def test_apply_merges_custom_list_maps_by_key(gadgets, namespace):
    def body(parts):
        return {'apiVersion': 'lab.example.com/v1', 'kind': 'Gadget', 'metadata': {'name': 'lm', 'namespace': namespace},
                'spec': {'size': 1, 'parts': parts}}
    gadgets.server_side_apply(body=body([{'name': 'a', 'count': 1}]), field_manager='one')
    merged = gadgets.server_side_apply(body=body([{'name': 'b', 'count': 2}]), field_manager='two')
    assert merged.to_dict()['spec']['parts'] == [{'name': 'a', 'count': 1}, {'name': 'b', 'count': 2}]
    owners = {m['manager']: m['fieldsV1'] for m in merged.to_dict()['metadata']['managedFields']}
    assert 'k:{"name":"b"}' in owners['two']['f:spec']['f:parts']
