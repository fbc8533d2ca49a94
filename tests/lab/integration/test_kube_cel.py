"""CRD x-kubernetes-validations (CEL) rules and schema defaults in the lab's Kubernetes API, through kubectl and the
kubernetes client."""

import json

import pytest
import yaml
from kubernetes import config, dynamic
from kubernetes.client.rest import ApiException

from castle_lab.kube import upstream_crds
from kube_helpers import kubectl

pytestmark = pytest.mark.lab

CRD = 'helmreleases.helm.toolkit.fluxcd.io'
MESSAGE = 'spec: Invalid value: "object": either chart or chartRef must be set'


@pytest.fixture(scope='module')
def releases(lab, kenv):
    kubectl(lab, kenv, 'apply', '--server-side', '--field-manager=castle-test', '-f', '-', stdin=yaml.safe_dump_all([
        {'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': 'flux-system'}}, upstream_crds.bundled_crd(CRD)]))
    kubectl(lab, kenv, 'wait', '--for=condition=Established', '--timeout=20s', 'crd/' + CRD)
    dyn = dynamic.DynamicClient(config.new_client_from_config(kenv['KUBECONFIG']))
    return dyn.resources.get(api_version='helm.toolkit.fluxcd.io/v2', kind='HelmRelease')


def release(name, **spec):
    return {'apiVersion': 'helm.toolkit.fluxcd.io/v2', 'kind': 'HelmRelease',
            'metadata': {'name': name, 'namespace': 'flux-system'}, 'spec': dict({'interval': '30m'}, **spec)}


def test_a_helmrelease_without_chart_or_chartref_is_refused(lab, kenv, releases):
    for verb in (['create'], ['apply', '--server-side', '--field-manager=castle-test']):
        result = kubectl(lab, kenv, *verb, '-f', '-', stdin=yaml.safe_dump(release('no-chart')), check=False)
        assert result.returncode != 0
        assert MESSAGE in result.stderr, result.stderr
    with pytest.raises(ApiException) as caught:
        releases.create(body=release('no-chart'), namespace='flux-system')
    status = json.loads(caught.value.body)
    assert (status['code'], status['reason']) == (422, 'Invalid')
    assert status['message'] == 'HelmRelease.helm.toolkit.fluxcd.io "no-chart" is invalid: ' + MESSAGE
    assert status['details']['causes'] == [{'reason': 'FieldValueInvalid', 'field': 'spec', 'message':
                                            'Invalid value: "object": either chart or chartRef must be set'}]
    chart = {'spec': {'chart': 'podinfo', 'sourceRef': {'kind': 'HelmRepository', 'name': 'podinfo'}}}
    result = kubectl(lab, kenv, 'create', '-f', '-', stdin=yaml.safe_dump(release('with-chart', chart=chart)))
    assert result.returncode == 0, result.stderr
    kubectl(lab, kenv, 'delete', '-n', 'flux-system', 'helmrelease', 'with-chart')


def test_a_crd_whose_rule_does_not_compile_is_refused(lab, kenv):
    crd = {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
           'metadata': {'name': 'gadgets.cel.lab.example'},
           'spec': {'group': 'cel.lab.example', 'scope': 'Namespaced',
                    'names': {'plural': 'gadgets', 'singular': 'gadget', 'kind': 'Gadget'},
                    'versions': [{'name': 'v1', 'served': True, 'storage': True, 'schema': {'openAPIV3Schema': {
                        'type': 'object', 'properties': {'spec': {
                            'type': 'object', 'properties': {'size': {'type': 'integer'}},
                            'x-kubernetes-validations': [{'rule': 'self.size >', 'message': 'too big'}]}}}}}]}}
    result = kubectl(lab, kenv, 'create', '-f', '-', stdin=yaml.safe_dump(crd), check=False)
    assert result.returncode != 0
    assert ('spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid '
            'value: apiextensions.ValidationRule{Rule:"self.size >", Message:"too big"') in result.stderr, result.stderr
    assert 'compilation failed: ERROR: <input>:1:12: Syntax error:' in result.stderr
