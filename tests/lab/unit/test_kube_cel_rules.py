"""Custom resources' x-kubernetes-validations (CEL) rules and schema defaults, as kube-apiserver applies them."""

import copy

import pytest

from castle_lab.kube import upstream_crds
from castle_lab.kube.api import cel, schema
from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.api.registry import crd_types

NAMESPACE = 'flux-system'
RELEASE = {'apiVersion': 'helm.toolkit.fluxcd.io/v2', 'kind': 'HelmRelease',
           'metadata': {'name': 'podinfo', 'namespace': NAMESPACE},
           'spec': {'interval': '30m', 'chart': {'spec': {
               'chart': 'podinfo', 'sourceRef': {'kind': 'HelmRepository', 'name': 'podinfo'}}}}}


@pytest.fixture(name='api')
def fixture_api():
    api = KubeApi(seed_node=False)
    api.create(api.registry.get('', 'v1', 'namespaces'), None, {'metadata': {'name': NAMESPACE}}, 'test')
    return api


def served(api, crd_name):
    """The resource type of a bundled CRD, registered as the CRD controller does once it is established."""
    rtype = crd_types(upstream_crds.bundled_crd(crd_name))[0]
    api.registry.add(rtype)
    return rtype


def refusal(call, *args):
    with pytest.raises(ApiError) as caught:
        call(*args)
    return caught.value


def test_a_helmrelease_without_chart_or_chartref_is_refused_with_the_crds_message(api):
    releases = served(api, 'helmreleases.helm.toolkit.fluxcd.io')
    body = copy.deepcopy(RELEASE)
    del body['spec']['chart']
    error = refusal(api.create, releases, NAMESPACE, body, 'test')
    assert (error.code, error.reason) == (422, 'Invalid')
    assert error.message == ('HelmRelease.helm.toolkit.fluxcd.io "podinfo" is invalid: spec: Invalid value: '
                             '"object": either chart or chartRef must be set')
    assert error.details['causes'] == [{'reason': 'FieldValueInvalid', 'field': 'spec', 'message':
                                        'Invalid value: "object": either chart or chartRef must be set'}]
    created = api.create(releases, NAMESPACE, RELEASE, 'test')
    both = dict(created, spec=dict(created['spec'], chartRef={'kind': 'OCIRepository', 'name': 'podinfo'}))
    assert 'either chart or chartRef' in refusal(api.replace, releases, NAMESPACE, 'podinfo', both, 'test').message


def test_nested_rules_of_the_external_secrets_stores_name_their_field(api):
    stores = served(api, 'clustersecretstores.external-secrets.io')
    body = {'apiVersion': 'external-secrets.io/v1', 'kind': 'ClusterSecretStore', 'metadata': {'name': 'bao'},
            'spec': {'provider': {'openBao': {'server': 'https://127.0.10.1:8200', 'auth': {}}}}}
    error = refusal(api.create, stores, None, body, 'test')
    assert [c['field'] for c in error.details['causes']] == ['spec.provider.openBao.auth']
    assert error.details['causes'][0]['message'] == (
        'Invalid value: "object": exactly one of the fields in [appRole tokenSecretRef userPass] must be set')
    body['spec']['provider']['openBao']['auth'] = {'tokenSecretRef': {'name': 'bao-token', 'key': 'token'}}
    assert api.create(stores, None, body, 'test')['metadata']['name'] == 'bao'


def test_cel_rules_wait_for_the_schema_errors_that_block_them(api):
    releases = served(api, 'helmreleases.helm.toolkit.fluxcd.io')
    body = copy.deepcopy(RELEASE)
    del body['spec']['chart']
    body['spec']['suspend'] = 'no'
    causes = refusal(api.create, releases, NAMESPACE, body, 'test').details['causes']
    assert [c['field'] for c in causes] == ['spec.suspend', '<nil>']
    assert causes[1]['message'] == ('Invalid value: null: some validation rules were not checked because the object '
                                    'was invalid; correct the existing errors to complete validation')


SCHEMA = {'type': 'object', 'properties': {'spec': {
    'type': 'object',
    'x-kubernetes-validations': [
        {'rule': 'self.replicas <= self.max', 'messageExpression': "'replicas above ' + string(self.max)",
         'fieldPath': '.replicas'},
        {'rule': 'self.mode == oldSelf.mode', 'message': 'mode is immutable', 'reason': 'FieldValueForbidden'},
        {'rule': "!has(self.legacy)"},
        {'rule': 'oldSelf.hasValue() || self.replicas == 1', 'optionalOldSelf': True,
         'message': 'start with one replica'}],
    'properties': {'replicas': {'type': 'integer'}, 'max': {'type': 'integer'}, 'mode': {'type': 'string'},
                   'legacy': {'type': 'string'}}}}}


def rules_failed(obj, old=None):
    return cel.validate(SCHEMA, obj, old)


def test_message_expression_field_path_and_default_message():
    assert rules_failed({'spec': {'replicas': 3, 'max': 2, 'mode': 'a'}}) == [
        ('spec.replicas', 'Invalid value: "object": replicas above 2', 'FieldValueInvalid'),
        ('spec', 'Invalid value: "object": start with one replica', 'FieldValueInvalid')]
    assert rules_failed({'spec': {'replicas': 1, 'max': 2, 'legacy': 'x'}}) == [
        ('spec', 'Invalid value: "object": failed rule: !has(self.legacy)', 'FieldValueInvalid')]


def test_transition_rules_run_on_update_only_and_unchanged_values_ratchet():
    old = {'spec': {'replicas': 1, 'max': 2, 'mode': 'a'}}
    assert rules_failed({'spec': {'replicas': 1, 'max': 2, 'mode': 'b'}}) == []
    assert rules_failed({'spec': {'replicas': 2, 'max': 2, 'mode': 'b'}}, old) == [
        ('spec', 'Forbidden: mode is immutable', 'FieldValueForbidden')]
    legacy = {'spec': {'replicas': 1, 'max': 2, 'mode': 'a', 'legacy': 'x'}}
    warnings = []
    assert cel.validate(SCHEMA, copy.deepcopy(legacy), legacy, warnings=warnings) == []
    assert warnings == ['spec: Invalid value: "object": failed rule: !has(self.legacy)']


def test_runtime_errors_are_reported_as_the_server_words_them():
    schema_ = {'type': 'object', 'properties': {'spec': {'type': 'object', 'x-kubernetes-validations': [
        {'rule': "self.sourceRef.kind == 'HelmRepository'"}]}}}
    assert cel.validate(schema_, {'spec': {}}) == [
        ('spec', 'Invalid value: "object": no such key: sourceRef evaluating rule: '
                 "self.sourceRef.kind == 'HelmRepository'", 'FieldValueInvalid')]


def test_a_crd_whose_rule_does_not_compile_is_refused(api):
    crds = api.registry.get('apiextensions.k8s.io', 'v1', 'customresourcedefinitions')
    crd = upstream_crds.bundled_crd('helmreleases.helm.toolkit.fluxcd.io')
    version = next(v for v in crd['spec']['versions'] if v['name'] == 'v2')
    index = crd['spec']['versions'].index(version)
    version['schema']['openAPIV3Schema']['properties']['spec']['x-kubernetes-validations'] = [
        {'rule': 'has(self.chart) &&', 'message': 'broken'}]
    error = refusal(api.create, crds, None, crd, 'test')
    cause = error.details['causes'][0]
    assert cause['field'] == ('spec.versions[{0}].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0]'
                              '.rule'.format(index))
    assert cause['message'].startswith(
        'Invalid value: apiextensions.ValidationRule{Rule:"has(self.chart) &&", Message:"broken", '
        'MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
        'OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:19: Syntax error:')
    assert cel.rule_errors({'x-kubernetes-validations': [{'rule': "'text'"}]}, 'x')[0][1].endswith(
        'cel expression must evaluate to a bool')


LIST = {'type': 'object', 'properties': {'spec': {'type': 'object', 'properties': {
    'names': {'type': 'array', 'items': {'type': 'object', 'properties': {'name': {'type': 'string'}},
                                         'x-kubernetes-validations': [{'rule': 'self.name == oldSelf.name'}]}},
    'size': {'type': 'integer'}}}}}


@pytest.mark.parametrize('rule, field, message', [
    ({'rule': ' '}, 'rule', 'Required value: rule is not specified'),
    ({'rule': 'true', 'message': 'two\nlines'}, 'message',
     'Invalid value: "two\\nlines": message must not contain line breaks'),
    ({'rule': 'true &&\ntrue'}, 'message', 'Required value: message must be specified if rule contains line breaks'),
    ({'rule': 'true', 'reason': 'FieldValueWrong'}, 'reason', 'Unsupported value: "FieldValueWrong": supported '
     'values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"'),
    ({'rule': 'true', 'fieldPath': '.nosuch'}, 'fieldPath', 'Invalid value: ".nosuch": fieldPath must be a valid path'),
    ({'rule': 'self.size > 1', 'optionalOldSelf': True}, 'optionalOldSelf',
     'Invalid value: true: may not be set if oldSelf is not used in rule'),
    ({'rule': 'self.size > 1', 'messageExpression': '1'}, 'messageExpression',
     'messageExpression must evaluate to a string')])
def test_malformed_rules_are_refused_with_the_crd(rule, field, message):
    spec = {'type': 'object', 'properties': {'size': {'type': 'integer'}}, 'x-kubernetes-validations': [rule]}
    found = cel.rule_errors(spec, 'spec')
    assert [f for f, _m, _r in found] == ['spec.x-kubernetes-validations[0].' + field]
    assert message in found[0][1]


def test_oldself_is_refused_below_a_list_whose_items_have_no_key():
    assert cel.rule_errors(LIST, 's') == [(
        's.properties[spec].properties[names].items.x-kubernetes-validations[0].rule',
        'Invalid value: "self.name == oldSelf.name": oldSelf cannot be used on the uncorrelatable portion of the '
        'schema within s.properties[spec].properties[names]', 'FieldValueInvalid')]
    keyed = copy.deepcopy(LIST)
    keyed['properties']['spec']['properties']['names'].update({'x-kubernetes-list-type': 'map',
                                                               'x-kubernetes-list-map-keys': ['name']})
    assert cel.rule_errors(keyed, 's') == []


DEFAULTS = {'type': 'object', 'properties': {'spec': {'type': 'object', 'properties': {
    'interval': {'type': 'string', 'default': '10m'},
    'note': {'type': 'string', 'nullable': True, 'default': 'n'},
    'size': {'type': 'integer'},
    'install': {'type': 'object', 'default': {}, 'properties': {'crds': {'type': 'string', 'default': 'Create'}}},
    'ports': {'type': 'array', 'items': {'type': 'object', 'properties': {
        'protocol': {'type': 'string', 'default': 'TCP'}}}},
    'extra': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True, 'properties': {
        'mode': {'type': 'string', 'default': 'auto'}}}}}}}


def test_defaults_fill_absent_and_non_nullable_null_fields():
    obj = {'spec': {'size': None, 'note': None, 'ports': [{}, {'protocol': 'UDP'}], 'extra': {'other': 1}}}
    schema.default(obj, DEFAULTS)
    assert obj == {'spec': {'interval': '10m', 'note': None, 'install': {'crds': 'Create'},
                            'ports': [{'protocol': 'TCP'}, {'protocol': 'UDP'}], 'extra': {'other': 1, 'mode': 'auto'}}}


def test_defaults_apply_on_create_and_on_read_of_what_storage_holds(api):
    releases = served(api, 'helmreleases.helm.toolkit.fluxcd.io')
    rtype = copy.deepcopy(releases)
    rtype.schema['properties']['spec']['properties']['timeout'] = {'type': 'string', 'default': '5m'}
    created = api.create(rtype, NAMESPACE, RELEASE, 'test')
    assert created['spec']['timeout'] == '5m'
    stored = api.store.get(rtype.key, NAMESPACE, 'podinfo')
    del stored['spec']['timeout']
    assert api.get(rtype, NAMESPACE, 'podinfo')['spec']['timeout'] == '5m'
