"""Custom resources against structural schemas: pruning, validation, list map keys."""

from castle_lab.kube.api.registry import list_map_keys
from castle_lab.kube.api.schema import validate

SCHEMA = {'type': 'object', 'properties': {
    'spec': {'type': 'object', 'required': ['size'], 'properties': {
        'size': {'type': 'integer'},
        'port': {'x-kubernetes-int-or-string': True},
        'note': {'type': 'string', 'nullable': True},
        'extra': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True},
        'labels': {'type': 'object', 'additionalProperties': {'type': 'string'}},
        'items': {'type': 'array', 'items': {'type': 'object', 'properties': {'name': {'type': 'string'}}}}}}}}


def test_unknown_fields_are_pruned_unless_preserved():
    obj = {'apiVersion': 'x/v1', 'kind': 'X', 'metadata': {'name': 'a', 'anything': 1},
           'spec': {'size': 1, 'junk': 2, 'extra': {'kept': {'deep': 1}}, 'labels': {'a': 'b'},
                    'items': [{'name': 'n', 'junk': 3}]}, 'top': 1}
    dropped, errors = validate(obj, SCHEMA)
    assert sorted(dropped) == ['spec.items[0].junk', 'spec.junk', 'top']
    assert errors == []
    assert obj['spec'] == {'size': 1, 'extra': {'kept': {'deep': 1}}, 'labels': {'a': 'b'}, 'items': [{'name': 'n'}]}
    assert obj['metadata'] == {'name': 'a', 'anything': 1}


def test_int_or_string_and_nullable():
    for port in (80, 'http'):
        assert validate({'spec': {'size': 1, 'port': port, 'note': None}}, SCHEMA)[1] == []
    errors = validate({'spec': {'size': 1, 'port': 1.5}}, SCHEMA)[1]
    assert [e[0] for e in errors] == ['spec.port']


def test_violations_name_their_field():
    errors = validate({'spec': {'size': 'big', 'labels': {'a': 1}}}, SCHEMA)[1]
    assert [(field, validator) for field, _message, validator, _value in errors] == [
        ('spec.labels.a', 'type'), ('spec.size', 'type')]
    missing = validate({'spec': {}}, SCHEMA)[1]
    assert [(field, validator) for field, _message, validator, _value in missing] == [('spec', 'required')]


def test_list_map_keys_of_a_schema():
    schema = {'type': 'object', 'properties': {'spec': {'type': 'object', 'properties': {
        'ports': {'type': 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['port'],
                  'items': {'type': 'object', 'properties': {'hosts': {
                      'type': 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'],
                      'items': {'type': 'object'}}}}},
        'pairs': {'type': 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['a', 'b']},
        'plain': {'type': 'array', 'items': {'type': 'string'}}}}}}
    assert list_map_keys(schema) == {('ports', 'spec'): 'port', ('hosts', 'ports'): 'name'}
