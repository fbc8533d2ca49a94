"""Built-in kinds refused, warned about and explained as a real API server does, through kubectl 1.35 and the
kubernetes Python client."""

import copy
import json

import pytest
import yaml
from kubernetes import client, config

from kube_helpers import kubectl, scratch_namespace

pytestmark = pytest.mark.lab

DEPLOYMENT = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'web'},
              'spec': {'replicas': 1, 'selector': {'matchLabels': {'app': 'web'}},
                       'template': {'metadata': {'labels': {'app': 'web'}},
                                    'spec': {'containers': [{'name': 'web', 'image': 'nginx:1.29'}]}}}}


@pytest.fixture
def namespace(kenv):
    api_client = config.new_client_from_config(kenv['KUBECONFIG'])
    yield from scratch_namespace(client.CoreV1Api(api_client), 'kv')


def manifest(**spec):
    body = copy.deepcopy(DEPLOYMENT)
    body['spec'].update(spec)
    return yaml.safe_dump(body)


def test_strict_validation_refuses_an_unknown_field(lab, kenv, namespace):
    answer = kubectl(lab, kenv, 'apply', '--validate=strict', '-n', namespace, '-f', '-', stdin=manifest(foo=1),
                     check=False)
    assert answer.returncode != 0
    assert 'strict decoding error: unknown field "spec.foo"' in answer.stderr
    assert kubectl(lab, kenv, 'get', 'deployments', '-n', namespace, '-o', 'name').stdout.strip() == ''
    # Warn stores the object without the field and says so in a warning.
    warned = kubectl(lab, kenv, 'create', '--validate=warn', '-n', namespace, '-f', '-', stdin=manifest(foo=1))
    assert 'Warning: unknown field "spec.foo"' in warned.stderr
    got = json.loads(kubectl(lab, kenv, 'get', 'deployment', 'web', '-n', namespace, '-o', 'json').stdout)
    assert 'foo' not in got['spec']


def test_a_wrong_type_is_refused(lab, kenv, namespace):
    answer = kubectl(lab, kenv, 'create', '-n', namespace, '-f', '-', stdin=manifest(replicas='two'), check=False)
    assert answer.returncode != 0
    assert ('Deployment in version "v1" cannot be handled as a Deployment: json: cannot unmarshal string into Go '
            'struct field DeploymentSpec.spec.replicas of type int32') in answer.stderr


def test_an_invalid_label_key_is_refused(lab, kenv, namespace):
    body = yaml.safe_load(manifest())
    body['metadata']['labels'] = {'bad key!': 'x'}
    answer = kubectl(lab, kenv, 'apply', '-n', namespace, '-f', '-', stdin=yaml.safe_dump(body), check=False)
    assert answer.returncode != 0
    assert 'The Deployment "web" is invalid: metadata.labels: Invalid value: "bad key!": name part must consist of ' \
           'alphanumeric characters' in answer.stderr


def test_a_changed_deployment_selector_is_refused(lab, kenv, namespace):
    kubectl(lab, kenv, 'apply', '-n', namespace, '-f', '-', stdin=manifest())
    changed = yaml.safe_load(manifest(selector={'matchLabels': {'app': 'other'}}))
    changed['spec']['template']['metadata']['labels'] = {'app': 'other'}
    answer = kubectl(lab, kenv, 'apply', '-n', namespace, '-f', '-', stdin=yaml.safe_dump(changed), check=False)
    assert answer.returncode != 0
    assert 'spec.selector: Invalid value: &LabelSelector{MatchLabels:map[string]string{app: other,},' \
           'MatchExpressions:[]LabelSelectorRequirement{},}: field is immutable' in answer.stderr


def post(api_client, path, body, query=()):
    """A raw POST through the Python client: (status code, decoded body, Warning headers)."""
    method, url, headers, data, _files = api_client.param_serialize(
        'POST', path, query_params=list(query), body=body, auth_settings=['BearerToken'],
        header_params={'Content-Type': 'application/json', 'Accept': 'application/json'})
    response = api_client.call_api(method, url, headers, data)
    response.read()
    return response.status, json.loads(response.data), response.getheaders().get_all('Warning') or []


def test_the_python_client_gets_warnings_and_statuses(kenv, namespace):
    api_client = config.new_client_from_config(kenv['KUBECONFIG'])
    path = '/apis/apps/v1/namespaces/{0}/deployments'.format(namespace)
    body = yaml.safe_load(manifest())
    body['spec']['template']['spec']['containers'][0]['bogus'] = True
    code, status, _warnings = post(api_client, path, body, [('fieldValidation', 'Strict')])
    assert (code, status['reason']) == (400, 'BadRequest')
    assert status['message'].endswith('strict decoding error: unknown field "spec.template.spec.containers[0].bogus"')
    # Without fieldValidation the server warns.
    code, created, warnings = post(api_client, path, body)
    assert code == 201 and 'bogus' not in created['spec']['template']['spec']['containers'][0]
    assert '299 - "unknown field \\"spec.template.spec.containers[0].bogus\\""' in warnings
    code, status, _warnings = post(api_client, path, body, [('fieldValidation', 'Sometimes')])
    assert code == 422 and 'fieldValidation: Unsupported value: "Sometimes"' in status['message']
    # A key given twice in a JSON body.
    method, url, headers, _body, _files = api_client.param_serialize(
        'POST', '/api/v1/namespaces/{0}/configmaps'.format(namespace), query_params=[('fieldValidation', 'Strict')],
        auth_settings=['BearerToken'], header_params={'Content-Type': 'application/json'})
    answer = api_client.rest_client.pool_manager.request(
        method, url, headers=headers, body='{"metadata": {"name": "twice"}, "data": {"k": "1", "k": "2"}}')
    assert answer.status == 400 and json.loads(answer.data)['message'] == (
        'ConfigMap in version "v1" cannot be handled as a ConfigMap: strict decoding error: duplicate field "data.k"')


def test_kubectl_explain_reads_the_servers_openapi(lab, kenv):
    explained = kubectl(lab, kenv, 'explain', 'deployment.spec').stdout
    assert 'KIND:       Deployment' in explained and 'VERSION:    v1' in explained
    assert 'replicas\t<integer>' in explained
    assert 'Number of desired pods.' in kubectl(lab, kenv, 'explain', 'deployment.spec.replicas').stdout
    service = kubectl(lab, kenv, 'explain', 'service.spec.ports.targetPort').stdout
    assert 'FIELD: targetPort <string>' in service and 'Number or name of the port' in service
