"""Built-in kinds decoded, defaulted and validated as kube-apiserver does, from the derived Kubernetes 1.35 schemas."""

import copy
import json
import pathlib
import sys

import pytest

from castle_lab.kube.api import builtin
from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.api.patch import APPLY_PATCH, MERGE_PATCH, STRATEGIC_PATCH
from castle_lab.kube.api.registry import BUILTINS
from castle_lab.kube.controllers.flux.helm import HelmReleaseController
from castle_lab.kube.server.discovery import openapi_document

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / 'lab' / 'tools'))
import derive_builtin_schemas  # noqa: E402  pylint: disable=wrong-import-position

NS = 'team'
DEPLOYMENT = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'web', 'namespace': NS},
              'spec': {'replicas': 2, 'selector': {'matchLabels': {'app': 'web'}},
                       'template': {'metadata': {'labels': {'app': 'web'}},
                                    'spec': {'containers': [{'name': 'web', 'image': 'nginx:1.29'}]}}}}
SELECTOR_MESSAGE = ('spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: other,},'
                    'MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable')


@pytest.fixture
def api():
    api = KubeApi()
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': NS}}, 'test')
    return api


def kind(api, group, plural):
    return api.registry.get(group, 'v1', plural)


def refused(call, *args, **kwargs):
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)
    return caught.value


def fields(error):
    return [(c['field'], c['message']) for c in error.details['causes']]


def deployment(**spec):
    body = copy.deepcopy(DEPLOYMENT)
    body['spec'].update(spec)
    return body


# the derived schemas

def test_the_derived_definitions_are_the_v3_documents_shape_and_closed():
    definitions = builtin.definitions()
    spec = definitions['io.k8s.api.apps.v1.DeploymentSpec']
    assert spec['properties']['replicas'] == {
        'description': 'Number of desired pods. This is a pointer to distinguish between explicit zero and not '
                       'specified. Defaults to 1.', 'format': 'int32', 'type': 'integer'}
    assert spec['properties']['selector']['allOf'] == [
        {'$ref': '#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector'}]
    assert spec['required'] == ['selector', 'template']
    assert definitions[builtin.INT_OR_STRING] == {'type': 'string', 'format': 'int-or-string'}
    assert 'enum' not in definitions['io.k8s.api.apps.v1.Deployment']['properties']['kind']
    dangling = {ref for schema in definitions.values() for ref in derive_builtin_schemas.refs(
        _as_package(schema))} - set(definitions)
    assert not dangling
    assert builtin.definition_name('events.k8s.io', 'v1', 'Event') == 'io.k8s.api.events.v1.Event'


def test_every_served_builtin_kind_has_its_schema():
    # A kind added to the registry needs `lab/tools/derive_builtin_schemas.py` run again.
    missing = [(t.group, t.version, t.kind) for t in BUILTINS if not builtin.definition_name(t.group, t.version, t.kind)]
    assert not missing


def _as_package(schema):
    """A committed schema with the package's $ref spelling again, for derive_builtin_schemas.refs."""
    if isinstance(schema, dict):
        return {k: (v.replace(builtin.REF_PREFIX, derive_builtin_schemas.REF_FROM) if k == '$ref' and isinstance(
            v, str) else _as_package(v)) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_as_package(item) for item in schema]
    return schema


def test_derivation_restores_the_openapi_shape():
    properties = {'kind': {'type': ['string', 'null'], 'enum': ['T']},
                  'spec': {'$ref': '#/$defs/io.k8s.api.x.v1.Spec', 'description': 'd'},
                  'items': {'type': ['array', 'null'], 'items': {'$ref': '#/$defs/io.k8s.api.x.v1.Spec'}}}
    package = {'io.k8s.api.x.v1.Thing': {
        'type': ['object', 'null'], 'x-kubernetes-group-version-kind': [{'group': 'x', 'version': 'v1', 'kind': 'T'}],
        'properties': properties},
        'io.k8s.api.x.v1.Spec': {'type': 'object', 'properties': {'n': {'type': 'integer', 'format': 'int32'}}},
        'io.k8s.api.x.v1.Unused': {'type': 'object'}}
    thing = derive_builtin_schemas.undo(package['io.k8s.api.x.v1.Thing'], 'thing', top=True)
    assert thing['type'] == 'object' and thing['properties']['kind'] == {'type': 'string'}
    assert thing['properties']['spec'] == {'allOf': [{'$ref': '#/components/schemas/io.k8s.api.x.v1.Spec'}],
                                           'description': 'd'}
    assert thing['properties']['items']['items'] == {'$ref': '#/components/schemas/io.k8s.api.x.v1.Spec'}
    with pytest.raises(derive_builtin_schemas.DeriveError, match='unknown schema keywords'):
        derive_builtin_schemas.undo({'type': 'object', 'if': {}}, 'x')


def test_openapi_documents_carry_the_kinds_and_everything_they_refer_to(api):
    document = openapi_document(api.registry, 'apps', 'v1')
    schemas = document['components']['schemas']
    assert schemas['io.k8s.api.apps.v1.Deployment']['x-kubernetes-group-version-kind'] == [
        {'group': 'apps', 'kind': 'Deployment', 'version': 'v1'}]
    assert 'io.k8s.api.core.v1.Container' in schemas and 'io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta' in schemas
    assert 'io.k8s.api.core.v1.Service' not in schemas
    patch = document['paths']['/apis/apps/v1/namespaces/{namespace}/deployments/{name}']['patch']
    assert 'fieldValidation' in {p['name'] for p in patch['parameters']}


# decoding: types and unknown fields

def test_a_wrong_type_is_refused_with_the_decoders_message(api):
    error = refused(api.create, kind(api, 'apps', 'deployments'), NS, deployment(replicas='two'), 'test')
    assert (error.code, error.reason) == (400, 'BadRequest')
    assert error.message == ('Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal '
                             'string into Go struct field DeploymentSpec.spec.replicas of type int32')
    assert not api.store.list(('apps', 'deployments'), NS)


@pytest.mark.parametrize('body, message', [
    ({'metadata': {'name': 'c', 'labels': {'n': 1}}}, 'json: cannot unmarshal number into Go struct field '
                                                      'ObjectMeta.metadata.labels of type string'),
    ({'metadata': {'name': 'c'}, 'data': ['x']}, 'json: cannot unmarshal array into Go struct field ConfigMap.data '
                                                 'of type map[string]string'),
    ({'metadata': {'name': 'c'}, 'immutable': 'yes'}, 'json: cannot unmarshal string into Go struct field '
                                                      'ConfigMap.immutable of type bool'),
])
def test_configmap_type_errors(api, body, message):
    error = refused(api.create, kind(api, '', 'configmaps'), NS, body, 'test')
    assert error.code == 400 and error.message == 'ConfigMap in version "v1" cannot be handled as a ConfigMap: ' + message


def test_secret_data_must_be_base64_and_quantities_must_parse(api):
    error = refused(api.create, kind(api, '', 'secrets'), NS, {'metadata': {'name': 's'}, 'data': {'k': 'no!'}},
                    'test')
    assert error.code == 400 and error.message.endswith(': illegal base64 data at input byte 2')
    body = deployment()
    body['spec']['template']['spec']['containers'][0]['resources'] = {'limits': {'memory': 'lots'}}
    error = refused(api.create, kind(api, 'apps', 'deployments'), NS, body, 'test')
    assert error.message.endswith(": quantities must match the regular expression "
                                  "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    body['spec']['template']['spec']['containers'][0]['resources'] = {'limits': {'memory': '64Mi', 'cpu': 0.5}}
    api.create(kind(api, 'apps', 'deployments'), NS, body, 'test')


def test_unknown_fields_strict_warn_and_ignore(api):
    deployments = kind(api, 'apps', 'deployments')
    body = deployment(foo=1)
    body['spec']['template']['spec']['containers'][0]['imagePullPolicyy'] = 'Always'
    error = refused(api.create, deployments, NS, body, 'test', directive='Strict')
    # In the order the decoder meets them.
    assert (error.code, error.message) == (400, 'Deployment in version "v1" cannot be handled as a Deployment: '
                                                'strict decoding error: unknown field '
                                                '"spec.template.spec.containers[0].imagePullPolicyy", unknown field '
                                                '"spec.foo"')
    warnings = []
    created = api.create(deployments, NS, body, 'test', directive='Warn', warnings=warnings)
    assert warnings[:2] == ['unknown field "spec.template.spec.containers[0].imagePullPolicyy"', 'unknown field "spec.foo"']
    assert 'foo' not in created['spec'] and 'imagePullPolicyy' not in created['spec']['template']['spec']['containers'][0]
    quiet = []
    api.create(deployments, NS, dict(body, metadata={'name': 'other'}), 'test', directive='Ignore', warnings=quiet)
    assert not [w for w in quiet if 'unknown field' in w]


def test_duplicate_fields_of_a_json_body(api):
    body, duplicates = builtin.plain(json.loads(
        '{"metadata": {"name": "c", "name": "d"}, "data": {"k": "1", "k": "2"}, "list": [{"a": 1, "a": 2}]}',
        object_pairs_hook=builtin.Fields.of))
    assert duplicates == ['metadata.name', 'data.k', 'list[0].a']
    assert body == {'metadata': {'name': 'd'}, 'data': {'k': '2'}, 'list': [{'a': 2}]}
    assert type(body['metadata']) is dict  # pylint: disable=unidiomatic-typecheck
    maps = kind(api, '', 'configmaps')
    error = refused(builtin.check_duplicates, maps, duplicates[:2], True, None)
    assert error.message == ('ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: '
                             'duplicate field "metadata.name", duplicate field "data.k"')
    warnings = []
    builtin.check_duplicates(maps, duplicates[:2], False, warnings)
    assert warnings == ['duplicate field "metadata.name"', 'duplicate field "data.k"']


def test_a_patch_that_adds_an_unknown_field_is_invalid_on_field_patch(api):
    deployments = kind(api, 'apps', 'deployments')
    api.create(deployments, NS, deployment(), 'test')
    error = refused(api.patch, deployments, NS, 'web', {'spec': {'bogus': 1}}, MERGE_PATCH, 'test', directive='Strict')
    assert (error.code, error.reason) == (422, 'Invalid')
    assert error.details['causes'][0]['field'] == 'patch'
    assert error.message.startswith(' "" is invalid: patch: Invalid value: "{')
    assert error.message.endswith('": strict decoding error: unknown field "spec.bogus"')
    error = refused(api.patch, deployments, NS, 'web', {'spec': {'replicas': 'x'}}, MERGE_PATCH, 'test')
    assert error.code == 422
    assert error.message.endswith('json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of '
                                  'type int32')
    # A strategic merge patch shows the patch as Go prints it, and its converter's words.
    error = refused(api.patch, deployments, NS, 'web', {'spec': {'replicas': 'x'}}, STRATEGIC_PATCH, 'test')
    assert error.message == ' "" is invalid: patch: Invalid value: "map[spec:map[replicas:x]]": unrecognized type: int32'
    assert api.get(deployments, NS, 'web')['spec']['replicas'] == 2


def test_apply_refuses_unknown_fields_wrong_types_and_duplicate_keys(api):
    deployments = kind(api, 'apps', 'deployments')
    error = refused(api.patch, deployments, NS, 'web', deployment(bogus=1), APPLY_PATCH, 'test')
    assert (error.code, error.message) == (500, 'failed to create typed patch object (team/web; apps/v1, '
                                                'Kind=Deployment): .spec.bogus: field not declared in schema')
    assert 'reason' not in error.status()
    error = refused(api.patch, deployments, NS, 'web', deployment(replicas='two'), APPLY_PATCH, 'test')
    assert error.message.endswith('.spec.replicas: expected numeric (int or float), got string')
    body = deployment()
    body['spec']['template']['spec']['containers'][0]['env'] = [{'name': 'A', 'value': '1'}, {'name': 'A'}]
    error = refused(api.patch, deployments, NS, 'web', body, APPLY_PATCH, 'test')
    assert error.message.endswith('.spec.template.spec.containers[name="web"].env: duplicate entries for key '
                                  '[name="A"]')
    assert api.patch(deployments, NS, 'web', deployment(), APPLY_PATCH, 'test')[1]


# names and keys

@pytest.mark.parametrize('meta, field, message', [
    ({'name': 'Bad_Name'}, 'metadata.name', 'Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist '
                                            'of lower case alphanumeric characters'),
    ({'name': 'c', 'labels': {'bad key!': 'v'}}, 'metadata.labels', 'Invalid value: "bad key!": name part must consist '
                                                                    'of alphanumeric characters'),
    ({'name': 'c', 'labels': {'Example.com/x': 'v'}}, 'metadata.labels', 'Invalid value: "Example.com/x": prefix part '
                                                                         'a lowercase RFC 1123 subdomain'),
    ({'name': 'c', 'labels': {'k': '-v'}}, 'metadata.labels', 'Invalid value: "-v": a valid label must be an empty '
                                                              'string or consist of'),
    ({'name': 'c', 'labels': {'k': 'v' * 64}}, 'metadata.labels', 'must be no more than 63 characters'),
    ({'name': 'c', 'annotations': {'a/b/c': 'v'}}, 'metadata.annotations', 'Invalid value: "a/b/c": a qualified name '
                                                                           'must consist of'),
])
def test_names_label_and_annotation_keys(api, meta, field, message):
    error = refused(api.create, kind(api, '', 'configmaps'), NS, {'metadata': meta}, 'test')
    assert error.code == 422
    assert any(f == field and message in m for f, m in fields(error)), fields(error)


def test_service_names_are_dns_1035_labels_and_namespaces_dns_1123_labels(api):
    error = refused(api.create, kind(api, '', 'services'), NS, {'metadata': {'name': '1web'}, 'spec': {
        'ports': [{'port': 80}]}}, 'test')
    assert fields(error)[0][1].startswith('Invalid value: "1web": a DNS-1035 label must consist of')
    error = refused(api.create, kind(api, '', 'namespaces'), None, {'metadata': {'name': 'a.b'}}, 'test')
    assert fields(error)[0][1].startswith('Invalid value: "a.b": a lowercase RFC 1123 label must consist of lower case '
                                          "alphanumeric characters or '-'")


def test_config_keys(api):
    error = refused(api.create, kind(api, '', 'configmaps'), NS, {'metadata': {'name': 'c'}, 'data': {
        'a b': '1', '..': '2'}}, 'test')
    assert fields(error) == [
        ('data[a b]', "Invalid value: \"a b\": a valid config key must consist of alphanumeric characters, '-', '_' "
                      "or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is "
                      "'[-._a-zA-Z0-9]+')"),
        ('data[..]', 'Invalid value: "..": must not be \'..\'')]
    error = refused(api.create, kind(api, '', 'secrets'), NS, {'metadata': {'name': 's'}, 'stringData': {
        'a/b': 'x'}}, 'test')
    assert fields(error)[0][0] == 'stringData[a/b]'


def test_service_ports_protocols_and_types(api):
    services = kind(api, '', 'services')
    error = refused(api.create, services, NS, {'metadata': {'name': 'svc'}, 'spec': {'type': 'Weird', 'ports': [
        {'name': 'http', 'port': 70000, 'protocol': 'ICMP'}, {'port': 81, 'targetPort': 'very-long-port-name'},
        {'name': 'http', 'port': 82}]}}, 'test')
    assert error.code == 422
    assert sorted(fields(error)) == [
        ('spec.ports[0].port', 'Invalid value: 70000: must be between 1 and 65535, inclusive'),
        ('spec.ports[0].protocol', 'Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP"'),
        # targetPort defaults to port, and is checked after defaulting
        ('spec.ports[0].targetPort', 'Invalid value: 70000: must be between 1 and 65535, inclusive'),
        ('spec.ports[1].name', 'Required value'),
        ('spec.ports[1].targetPort', 'Invalid value: very-long-port-name: must be no more than 15 characters'),
        ('spec.ports[2].name', 'Duplicate value: "http"'),
        ('spec.type', 'Unsupported value: "Weird": supported values: "ClusterIP", "ExternalName", "LoadBalancer", '
                      '"NodePort"')]
    assert not api.store.list(('', 'services'), NS)


# immutable fields

def test_a_deployments_selector_is_immutable(api):
    deployments = kind(api, 'apps', 'deployments')
    api.create(deployments, NS, deployment(), 'test')
    changed = deployment(selector={'matchLabels': {'app': 'other'}})
    changed['spec']['template']['metadata']['labels'] = {'app': 'other'}
    error = refused(api.replace, deployments, NS, 'web', changed, 'test')
    assert error.code == 422 and error.message == 'Deployment.apps "web" is invalid: ' + SELECTOR_MESSAGE
    for group, plural in (('apps', 'replicasets'), ('apps', 'daemonsets')):
        api.create(kind(api, group, plural), NS, deployment(), 'test')
        assert refused(api.replace, kind(api, group, plural), NS, 'web', changed, 'test').code == 422


def test_a_statefulsets_spec_is_immutable_but_replicas_and_template(api):
    sets = kind(api, 'apps', 'statefulsets')
    api.create(sets, NS, dict(deployment(serviceName='web'), kind='StatefulSet'), 'test')
    api.patch(sets, NS, 'web', {'spec': {'replicas': 3}}, MERGE_PATCH, 'test')
    error = refused(api.patch, sets, NS, 'web', {'spec': {'serviceName': 'other'}}, MERGE_PATCH, 'test')
    assert fields(error) == [('spec', "Forbidden: updates to statefulset spec for fields other than 'replicas', "
                                      "'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' "
                                      "and 'minReadySeconds' are forbidden")]


def test_immutable_configmaps_and_secrets_keep_their_data(api):
    maps = kind(api, '', 'configmaps')
    api.create(maps, NS, {'metadata': {'name': 'c'}, 'data': {'a': '1'}, 'immutable': True}, 'test')
    error = refused(api.patch, maps, NS, 'c', {'data': {'a': '2'}, 'immutable': False}, MERGE_PATCH, 'test')
    assert fields(error) == [('data', 'Forbidden: field is immutable when `immutable` is set'),
                             ('immutable', 'Forbidden: field is immutable when `immutable` is set')]
    api.patch(maps, NS, 'c', {'metadata': {'labels': {'x': 'y'}}}, MERGE_PATCH, 'test')
    secrets = kind(api, '', 'secrets')
    api.create(secrets, NS, {'metadata': {'name': 's'}, 'stringData': {'a': '1'}}, 'test')
    error = refused(api.patch, secrets, NS, 's', {'type': 'kubernetes.io/tls'}, MERGE_PATCH, 'test')
    assert fields(error) == [('type', 'Invalid value: "kubernetes.io/tls": field is immutable')]


def test_a_services_cluster_ip_is_immutable_and_kept_when_left_out(api):
    services = kind(api, '', 'services')
    created = api.create(services, NS, {'metadata': {'name': 'svc'}, 'spec': {'ports': [{'port': 80}]}}, 'test')
    address = created['spec']['clusterIP']
    kept = api.replace(services, NS, 'svc', {'metadata': {'name': 'svc'}, 'spec': {'ports': [{'port': 81}]}}, 'test')
    assert kept['spec']['clusterIP'] == address and kept['spec']['clusterIPs'] == [address]
    error = refused(api.patch, services, NS, 'svc', {'spec': {'clusterIP': '10.96.9.9', 'clusterIPs': ['10.96.9.9']}},
                    MERGE_PATCH, 'test')
    assert fields(error) == [('spec.clusterIPs[0]', 'Invalid value: []string{"10.96.9.9"}: may not change once set'),
                             ('spec.clusterIP', 'Invalid value: "10.96.9.9": field is immutable')]


def test_jobs_get_a_generated_selector_and_keep_their_template(api):
    jobs = kind(api, 'batch', 'jobs')
    body = {'metadata': {'name': 'once'}, 'spec': {'template': {'spec': {
        'containers': [{'name': 'c', 'image': 'busybox:1'}]}}}}
    error = refused(api.create, jobs, NS, body, 'test')
    assert fields(error) == [('spec.template.spec.restartPolicy', 'Unsupported value: "Always": supported values: '
                                                                  '"OnFailure", "Never"')]
    body['spec']['template']['spec']['restartPolicy'] = 'Never'
    job = api.create(jobs, NS, body, 'test')
    uid = job['metadata']['uid']
    assert job['spec']['selector'] == {'matchLabels': {'batch.kubernetes.io/controller-uid': uid}}
    assert job['spec']['template']['metadata']['labels'] == {
        'batch.kubernetes.io/controller-uid': uid, 'controller-uid': uid, 'batch.kubernetes.io/job-name': 'once',
        'job-name': 'once'}
    assert (job['spec']['backoffLimit'], job['spec']['completions'], job['spec']['completionMode']) == (
        6, 1, 'NonIndexed')
    error = refused(api.patch, jobs, NS, 'once', {'spec': {'template': {'spec': {'restartPolicy': 'OnFailure'}}}},
                    STRATEGIC_PATCH, 'test')
    assert fields(error)[0][0] == 'spec.template' and fields(error)[0][1].endswith(': field is immutable')


def test_a_claims_spec_is_immutable_but_its_requests(api):
    claims = kind(api, '', 'persistentvolumeclaims')
    api.create(claims, NS, {'metadata': {'name': 'data'}, 'spec': {
        'accessModes': ['ReadWriteOnce'], 'resources': {'requests': {'storage': '1Gi'}}}}, 'test')
    api.patch(claims, NS, 'data', {'spec': {'resources': {'requests': {'storage': '2Gi'}}}}, MERGE_PATCH, 'test')
    error = refused(api.patch, claims, NS, 'data', {'spec': {'accessModes': ['ReadWriteMany']}}, MERGE_PATCH, 'test')
    assert fields(error)[0] == ('spec', 'Forbidden: spec is immutable after creation except resources.requests and '
                                        'volumeAttributesClassName for bound claims')


# defaults

def test_workload_and_service_defaults(api):
    created = api.create(kind(api, 'apps', 'deployments'), NS, deployment(), 'test')
    spec = created['spec']
    assert (spec['revisionHistoryLimit'], spec['progressDeadlineSeconds']) == (10, 600)
    assert spec['strategy'] == {'type': 'RollingUpdate', 'rollingUpdate': {'maxSurge': '25%', 'maxUnavailable': '25%'}}
    pod = spec['template']['spec']
    assert (pod['restartPolicy'], pod['dnsPolicy'], pod['schedulerName'], pod['terminationGracePeriodSeconds']) == (
        'Always', 'ClusterFirst', 'default-scheduler', 30)
    container = pod['containers'][0]
    assert (container['imagePullPolicy'], container['terminationMessagePath'],
            container['terminationMessagePolicy']) == ('IfNotPresent', '/dev/termination-log', 'File')
    latest = api.create(kind(api, '', 'pods'), NS, {'metadata': {'name': 'p'}, 'spec': {'containers': [
        {'name': 'c', 'image': 'busybox', 'ports': [{'containerPort': 80}]}]}}, 'test')
    assert latest['spec']['containers'][0]['imagePullPolicy'] == 'Always'
    assert latest['spec']['containers'][0]['ports'] == [{'containerPort': 80, 'protocol': 'TCP'}]
    service = api.create(kind(api, '', 'services'), NS, {'metadata': {'name': 'svc'}, 'spec': {
        'ports': [{'port': 80}]}}, 'test')['spec']
    assert (service['type'], service['sessionAffinity'], service['internalTrafficPolicy'], service['ipFamilies']) == (
        'ClusterIP', 'None', 'Cluster', ['IPv4'])
    assert service['ports'] == [{'port': 80, 'protocol': 'TCP', 'targetPort': 80}]
    external = api.create(kind(api, '', 'services'), NS, {'metadata': {'name': 'ext'}, 'spec': {
        'type': 'ExternalName', 'externalName': 'example.com'}}, 'test')['spec']
    assert 'clusterIP' not in external


def test_the_helm_controller_refuses_a_rendered_object_with_an_unknown_field(api):
    releases = HelmReleaseController(api)
    rendered = deployment(bogus=1)
    error = refused(releases.put, rendered)
    assert error.code == 400 and error.message.endswith('strict decoding error: unknown field "spec.bogus"')
    assert not api.store.list(('apps', 'deployments'), NS)


def test_a_host_network_pods_ports_are_host_ports_but_not_a_templates(api):
    spec = {'hostNetwork': True, 'containers': [{'name': 'speaker', 'image': 'quay.io/metallb/speaker:v0.15.2',
                                                 'ports': [{'name': 'monitoring', 'containerPort': 7472},
                                                           {'name': 'memberlist', 'containerPort': 7946,
                                                            'hostPort': 17946}]}]}
    pod = api.create(kind(api, '', 'pods'), 'kube-system', {'metadata': {'name': 'speaker'}, 'spec': copy.deepcopy(spec)},
                     'test')
    assert [p.get('hostPort') for p in pod['spec']['containers'][0]['ports']] == [7472, 17946]
    template = copy.deepcopy(DEPLOYMENT)
    template['metadata']['namespace'] = 'kube-system'
    template['spec']['template']['spec'] = copy.deepcopy(spec)
    created = api.create(kind(api, 'apps', 'deployments'), 'kube-system', template, 'test')
    assert [p.get('hostPort') for p in created['spec']['template']['spec']['containers'][0]['ports']] == [None, 17946]
