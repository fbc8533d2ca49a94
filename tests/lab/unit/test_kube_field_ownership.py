"""Field ownership as the API server keeps it: server-side apply of shared fields, managedFields sent by clients,
kubectl's move from client-side to server-side apply."""

import json

import pytest

from castle_lab.kube.api.errors import ApiError
from castle_lab.kube.api.objects import KubeApi
from castle_lab.kube.api.patch import APPLY_PATCH, JSON_PATCH, MERGE_PATCH

LAST_APPLIED = 'kubectl.kubernetes.io/last-applied-configuration'


@pytest.fixture
def api():
    return KubeApi()


def configmaps(api):
    return api.registry.get('', 'v1', 'configmaps')


def apply(api, manager, force=False, **fields):
    body = dict({'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'cm'}}, **fields)
    return api.patch(configmaps(api), 'default', 'cm', body, APPLY_PATCH, manager, force=force)[0]


def owners(obj):
    return {(e['manager'], e['operation']): e['fieldsV1'] for e in obj['metadata'].get('managedFields') or []}


def test_an_empty_map_applied_by_one_manager_keeps_the_keys_another_owns(api):
    apply(api, 'one', metadata={'name': 'cm', 'labels': {'team': 'a'}}, data={'key': 'v'})
    both = apply(api, 'two', metadata={'name': 'cm', 'labels': {}}, data={})
    assert owners(both)[('two', 'Apply')] == {'f:data': {}, 'f:metadata': {'f:labels': {}}}
    # `two` stops applying its empty maps: what `one` owns inside them stays.
    after = apply(api, 'two')
    assert after['data'] == {'key': 'v'} and after['metadata']['labels'] == {'team': 'a'}
    assert list(owners(after)) == [('one', 'Apply')]
    # `two` now sets a key of its own inside the map it applied empty before: `one`'s key stays too.
    again = apply(api, 'two', data={'own': 'x'})
    assert again['data'] == {'key': 'v', 'own': 'x'}


def test_a_field_no_longer_applied_goes_unless_another_manager_owns_it(api):
    apply(api, 'one', data={'alone': '1', 'shared': 's'})
    apply(api, 'two', data={'shared': 's'})
    after = apply(api, 'one', data={})
    assert after['data'] == {'shared': 's'}


def test_managed_fields_sent_in_a_patch_replace_the_recorded_ones(api):
    api.create(configmaps(api), 'default', {'metadata': {'name': 'cm'}, 'data': {'a': '1', 'b': '2'}},
               'kubectl-client-side-apply')
    current = api.get(configmaps(api), 'default', 'cm')
    moved = [dict(current['metadata']['managedFields'][0], manager='kubectl', operation='Apply')]
    patched = api.patch(configmaps(api), 'default', 'cm', [
        {'op': 'test', 'path': '/metadata/resourceVersion', 'value': current['metadata']['resourceVersion']},
        {'op': 'replace', 'path': '/metadata/managedFields', 'value': moved}], JSON_PATCH, 'kubectl')[0]
    assert list(owners(patched)) == [('kubectl', 'Apply')]
    # kubectl now owns `b` through its applies: dropped from its configuration, it goes.
    assert apply(api, 'kubectl', data={'a': '1'})['data'] == {'a': '1'}


def kept_entries(api):
    return api.get(configmaps(api), 'default', 'cm')['metadata']['managedFields']


def test_managed_fields_are_reset_by_an_empty_entry_and_kept_when_invalid(api):
    apply(api, 'one', data={'a': '1'})
    for invalid in ([{'manager': 'x'}], [dict(entry, fieldsV1={'f:data': 'x'}) for entry in kept_entries(api)]):
        kept = api.patch(configmaps(api), 'default', 'cm', {'metadata': {'managedFields': invalid}}, MERGE_PATCH,
                         'test')[0]
        assert list(owners(kept)) == [('one', 'Apply')]
    reset = api.patch(configmaps(api), 'default', 'cm', {'metadata': {'managedFields': [{}]}}, MERGE_PATCH,
                      'test')[0]
    assert 'managedFields' not in reset['metadata']
    assert 'managedFields' not in api.get(configmaps(api), 'default', 'cm')['metadata']


def test_an_apply_configuration_may_not_carry_managed_fields(api):
    with pytest.raises(ApiError) as refused:
        apply(api, 'one', metadata={'name': 'cm', 'managedFields': [{'manager': 'x'}]})
    assert (refused.value.code, refused.value.message) == (400, 'metadata.managedFields must be nil')


def test_kubectl_takes_over_what_it_applied_client_side(api):
    last = {'apiVersion': 'v1', 'kind': 'ConfigMap', 'metadata': {'name': 'cm', 'namespace': 'default'},
            'data': {'a': '1'}}
    api.create(configmaps(api), 'default', {'metadata': {'name': 'cm', 'annotations': {
        LAST_APPLIED: json.dumps(last)}}, 'data': {'a': '1'}}, 'kubectl-client-side-apply')
    with pytest.raises(ApiError) as refused:
        apply(api, 'other', data={'a': '2'})
    assert refused.value.code == 409
    taken = apply(api, 'kubectl', metadata={'name': 'cm', 'namespace': 'default'}, data={'a': '2'})
    assert taken['data'] == {'a': '2'}
    assert taken['metadata']['annotations'][LAST_APPLIED] == (
        '{"apiVersion":"v1","data":{"a":"2"},"kind":"ConfigMap","metadata":{"name":"cm","namespace":"default"}}\n')


def test_conflicts_are_worded_as_the_api_server_words_them(api):
    api.create(configmaps(api), 'default', {'metadata': {'name': 'cm'}, 'data': {'a': '1', 'b': '1'}}, 'kubectl-edit')
    apply(api, 'one', data={'c': '1'})
    with pytest.raises(ApiError) as refused:
        apply(api, 'two', data={'a': '2'})
    assert refused.value.message == 'Apply failed with 1 conflict: conflict with "kubectl-edit" using v1: .data.a'
    assert refused.value.details == {'causes': [{'reason': 'FieldManagerConflict', 'message': 'conflict with '
                                                 '"kubectl-edit" using v1', 'field': '.data.a'}]}
    with pytest.raises(ApiError) as refused:
        apply(api, 'two', data={'a': '2', 'b': '2', 'c': '2'})
    assert refused.value.message == ('Apply failed with 3 conflicts: conflicts with "kubectl-edit" using v1:\n'
                                     '- .data.a\n- .data.b\nconflicts with "one":\n- .data.c')
    # The same name applying is another manager than the one updating.
    with pytest.raises(ApiError) as refused:
        apply(api, 'kubectl-edit', data={'a': '2'})
    assert refused.value.code == 409


def test_keyed_list_items_print_their_key(api):
    deployments = api.registry.get('apps', 'v1', 'deployments')
    spec = {'selector': {'matchLabels': {'app': 'd'}}, 'template': {'metadata': {'labels': {'app': 'd'}}, 'spec': {
        'containers': [{'name': 'app', 'image': 'a:1'}]}}}
    body = {'apiVersion': 'apps/v1', 'kind': 'Deployment', 'metadata': {'name': 'd'}, 'spec': spec}
    api.patch(deployments, 'default', 'd', body, APPLY_PATCH, 'one')
    spec['template']['spec']['containers'][0]['image'] = 'a:2'
    with pytest.raises(ApiError) as refused:
        api.patch(deployments, 'default', 'd', body, APPLY_PATCH, 'two')
    assert refused.value.details['causes'][0]['field'] == '.spec.template.spec.containers[name="app"].image'
