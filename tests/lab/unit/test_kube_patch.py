"""Merge, strategic merge and server-side apply logic of the lab's Kubernetes API."""

import pytest

from castle_lab.kube.api.apply import ApplyConflict, decode, encode, field_paths, server_side_apply
from castle_lab.kube.api.patch import PatchError, json_patch, merge_patch, object_meta_keys, strategic_merge

POD_SPEC = {'containers': [{'name': 'app', 'image': 'a:1', 'env': [{'name': 'A', 'value': '1'}],
                            'ports': [{'containerPort': 80}]},
                           {'name': 'side', 'image': 's:1'}],
            'tolerations': [{'key': 'x'}]}


def test_merge_patch_merges_objects_removes_nulls_replaces_lists():
    target = {'a': {'b': 1, 'c': 2}, 'l': [1, 2], 'gone': 1}
    assert merge_patch(target, {'a': {'b': 9}, 'l': [3], 'gone': None, 'new': {'x': None, 'y': 1}}) == {
        'a': {'b': 9, 'c': 2}, 'l': [3], 'new': {'y': 1}}
    assert target['a']['b'] == 1


def test_strategic_merge_keys_lists_by_their_merge_key():
    patched = strategic_merge(POD_SPEC, {'containers': [
        {'name': 'app', 'image': 'a:2', 'env': [{'name': 'B', 'value': '2'}], 'ports': [{'containerPort': 443}]},
        {'name': 'new', 'image': 'n:1'}], 'tolerations': [{'key': 'y'}]})
    assert [(c['name'], c['image']) for c in patched['containers']] == [('app', 'a:2'), ('side', 's:1'), ('new', 'n:1')]
    assert [e['name'] for e in patched['containers'][0]['env']] == ['A', 'B']
    assert [p['containerPort'] for p in patched['containers'][0]['ports']] == [80, 443]
    assert patched['tolerations'] == [{'key': 'y'}]


def test_strategic_merge_directives():
    deleted = strategic_merge(POD_SPEC, {'containers': [{'name': 'side', '$patch': 'delete'}]})
    assert [c['name'] for c in deleted['containers']] == ['app']
    replaced = strategic_merge(POD_SPEC, {'containers': [{'name': 'only', 'image': 'o'}, {'$patch': 'replace'}]})
    assert replaced['containers'] == [{'name': 'only', 'image': 'o'}]
    assert strategic_merge({'a': {'b': 1}}, {'a': {'$patch': 'replace', 'c': 2}}) == {'a': {'c': 2}}


def test_strategic_merge_needs_the_merge_key():
    with pytest.raises(PatchError):
        strategic_merge(POD_SPEC, {'containers': [{'image': 'x'}]})


def test_json_patch_and_its_errors():
    assert json_patch({'a': [1]}, [{'op': 'add', 'path': '/a/-', 'value': 2}]) == {'a': [1, 2]}
    with pytest.raises(PatchError):
        json_patch({'a': 1}, [{'op': 'remove', 'path': '/b'}])


def test_field_paths_round_trip_through_fields_v1():
    obj = {'apiVersion': 'v1', 'kind': 'Pod', 'metadata': {'name': 'p', 'labels': {'a': 'b'}}, 'spec': POD_SPEC}
    paths = field_paths(obj)
    tree = encode(paths)
    assert tree['f:metadata'] == {'f:labels': {'f:a': {}}}
    assert tree['f:spec']['f:containers']['k:{"name":"app"}']['.'] == {}
    assert decode(tree) == paths


def test_apply_conflicts_then_force_moves_ownership():
    first = server_side_apply(None, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'a': '1', 'b': '2'}},
                              'one', 'v1', 'now', False)
    with pytest.raises(ApplyConflict) as conflict:
        server_side_apply(first, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'a': '9'}}, 'two', 'v1', 'now',
                          False)
    assert conflict.value.conflicts == [('one', '.data.a')]
    same_value = server_side_apply(first, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'a': '1'}}, 'two', 'v1',
                                   'now', False)
    assert {m['manager'] for m in same_value['metadata']['managedFields']} == {'one', 'two'}
    forced = server_side_apply(first, {'apiVersion': 'v1', 'kind': 'ConfigMap', 'data': {'a': '9'}}, 'two', 'v1',
                               'now', True)
    owners = {m['manager']: m['fieldsV1'] for m in forced['metadata']['managedFields']}
    assert owners == {'one': {'f:data': {'f:b': {}}}, 'two': {'f:data': {'f:a': {}}}}
    assert forced['data'] == {'a': '9', 'b': '2'}


def test_custom_resource_lists_are_atomic_under_apply():
    def applied(names):
        return {'apiVersion': 'x/v1', 'kind': 'X', 'spec': {'containers': [{'name': n} for n in names]}}
    first = server_side_apply(None, applied(['a']), 'one', 'x/v1', 'now', False)
    # Built-in lists merge by key: a second manager adds its own item beside the first one's.
    assert server_side_apply(first, applied(['b']), 'two', 'x/v1', 'now', False)['spec']['containers'] == [
        {'name': 'a'}, {'name': 'b'}]
    custom = server_side_apply(None, applied(['a']), 'one', 'x/v1', 'now', False, keys=object_meta_keys)
    with pytest.raises(ApplyConflict) as conflict:
        server_side_apply(custom, applied(['b']), 'two', 'x/v1', 'now', False, keys=object_meta_keys)
    assert conflict.value.conflicts == [('one', '.spec.containers')]
    forced = server_side_apply(custom, applied(['b']), 'two', 'x/v1', 'now', True, keys=object_meta_keys)
    assert forced['spec']['containers'] == [{'name': 'b'}]
