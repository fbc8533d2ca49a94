"""The Talos machine config schema: derived from upstream without documentation, and enforced as a node does."""

import json
import pathlib
import sys

import pytest
import yaml

from castle_lab.talos import machineconfig, secrets
from castle_lab.talos.schema import ConfigInvalid, schema, validate

REPO = pathlib.Path(__file__).resolve().parents[3]
REFERENCE = REPO.parent / 'shared' / 'reference'
sys.path.insert(0, str(REPO / 'lab' / 'tools'))
import derive_talos_schema  # noqa: E402  pylint: disable=wrong-import-position


@pytest.fixture(scope='module')
def bundle():
    return secrets.generate()


@pytest.fixture
def worker(bundle):
    return machineconfig.machine_config(bundle, 'worker', 'lab', 'https://127.0.0.1:6443')


def test_derivation_keeps_structure_and_drops_documentation():
    derived = derive_talos_schema.strip({
        'type': 'object', 'description': 'd', 'title': 't', 'markdownDescription': 'm',
        'properties': {'description': {'type': 'string', 'x-intellij-html-description': '<p/>'}},
        'oneOf': [{'$ref': '#/$defs/a', 'title': 'a'}], 'additionalProperties': False}, '#')
    assert derived == {'type': 'object', 'properties': {'description': {'type': 'string'}},
                       'oneOf': [{'$ref': '#/$defs/a'}], 'additionalProperties': False}


def test_derivation_refuses_unknown_keywords():
    with pytest.raises(derive_talos_schema.DeriveError, match='unknown schema keywords'):
        derive_talos_schema.strip({'type': 'object', 'if': {}}, '#')


@pytest.mark.skipif(not (REFERENCE / derive_talos_schema.SOURCE).exists(), reason='upstream reference not here')
def test_bundled_schema_is_the_derivation_of_the_reference(tmp_path):
    derive_talos_schema.derive(REFERENCE, tmp_path)
    assert json.loads((tmp_path / 'config.schema.json').read_text()) == schema()
    assert '6dd14300ecad2ad4dd1c63f5550f67cf8973195a' in (tmp_path / 'SOURCES.md').read_text()


def test_generated_configs_are_valid(bundle):
    for machine_type in ('controlplane', 'worker'):
        documents, warnings = validate(yaml.safe_dump(machineconfig.machine_config(
            bundle, machine_type, 'lab', 'https://127.0.0.1:6443')))
        assert documents[0]['machine']['type'] == machine_type and warnings == []


@pytest.mark.parametrize('change, expected', [
    (lambda c: c['machine'].update(bogus=1), "machine: unknown field ('bogus' was unexpected)"),
    (lambda c: c['machine']['install'].update(wipe='yes'), "machine.install.wipe: 'yes' is not of type 'boolean'"),
    (lambda c: c['machine']['install'].pop('disk'), 'machine.install: install disk or diskSelector should be defined'),
    (lambda c: c['machine'].update(type='master'), "machine.type: 'master' is not one of ['controlplane', 'worker']"),
    (lambda c: c['cluster']['controlPlane'].update(endpoint='10.0.0.1:6443'),
     "cluster.controlPlane.endpoint: '10.0.0.1:6443' does not match '^https://'"),
])
def test_invalid_configs_name_the_path_and_the_reason(worker, change, expected):
    change(worker)
    with pytest.raises(ConfigInvalid) as refused:
        validate(yaml.safe_dump(worker))
    assert expected in refused.value.errors
    assert str(refused.value).startswith('1 error occurred:\n\t* ')


def test_other_documents_are_checked_against_their_kind(worker):
    extra = {'apiVersion': 'v1alpha1', 'kind': 'KmsgLogConfig', 'name': 'remote', 'url': 'tcp://10.0.0.1:514',
             'nope': True}
    with pytest.raises(ConfigInvalid, match='unknown field'):
        validate(yaml.safe_dump(worker) + '---\n' + yaml.safe_dump(extra))
    with pytest.raises(ConfigInvalid, match="unknown config document kind 'Nope'"):
        validate(yaml.safe_dump(worker) + '---\n' + yaml.safe_dump({'apiVersion': 'v1alpha1', 'kind': 'Nope'}))


def test_modes_and_strictness(worker):
    worker['machine']['install'].pop('disk')
    documents, _warnings = validate(yaml.safe_dump(worker), mode='container')
    assert documents[0]['machine']['type'] == 'worker'
    worker['cluster']['clusterName'] = ''
    assert validate(yaml.safe_dump(worker), mode='cloud')[1] == ['cluster.clusterName: cluster name is empty']
    with pytest.raises(ConfigInvalid):
        validate(yaml.safe_dump(worker), mode='cloud', strict=True)
    with pytest.raises(ValueError, match='valid values are metal, cloud, and container'):
        validate(yaml.safe_dump(worker), mode='bare')
