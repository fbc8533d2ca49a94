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
    (lambda c: c['machine']['install'].pop('disk'), 'either install disk or diskSelector should be defined'),
    (lambda c: c['machine'].pop('install'), 'install instructions are required in "metal" mode'),
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


@pytest.fixture
def control_plane(bundle):
    return machineconfig.machine_config(bundle, 'controlplane', 'lab', 'https://127.0.0.1:6443')


def interfaces(config, *devices):
    config['machine']['network'] = {'interfaces': list(devices)}
    return config


# Config.Validate of v1alpha1_validation.go (v1.11.6): one case per rule, in upstream's words.
@pytest.mark.parametrize('role, change, expected', [
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'dhcp': True, 'vip': {'ip': '10.0.40.10'}}),
     'virtual (shared) IP is not allowed on non-controlplane nodes'),
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'vlans': [{'vlanId': 40, 'vip': {'ip': '10.0.41.10'}}]}),
     'virtual (shared) IP is not allowed on non-controlplane nodes'),
    ('worker', lambda c: c['machine']['ca'].update(key='a2V5'),
     'issuing Talos API CA key is not allowed on non-controlplane nodes (.machine.ca)'),
    ('worker', lambda c: c['cluster']['ca'].update(key='a2V5'),
     'issuing Kubernetes API CA key is not allowed on non-controlplane nodes (.cluster.ca)'),
    ('worker', lambda c: c['cluster']['ca'].update(key='a2V5'),
     'cluster CA key is not allowed on non-controlplane nodes (.cluster.ca)'),
    ('worker', lambda c: c['cluster'].update(etcd={'ca': {'crt': 'Y3J0', 'key': ''}}),
     'etcd config is only allowed on control plane machines'),
    ('controlplane', lambda c: c['machine']['ca'].update(key=''),
     'issuing CA key is required for controlplane nodes (.machine.ca.key)'),
    ('worker', lambda c: c['machine'].pop('ca'),
     'issuing CA or some accepted CAs are required (.machine.ca, machine.acceptedCAs)'),
    ('worker', lambda c: interfaces(c, {'dhcp': True}),
     '[networking.os.device.interface], [networking.os.device.deviceSelector]: required either config section to be set'),
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}}),
     '[networking.os.device.interface], [networking.os.device.deviceSelector]: config sections are mutually exclusive'),
    ('worker', lambda c: interfaces(c, {'deviceSelector': {}, 'dhcp': True}),
     '[networking.os.device.deviceSelector]: config section should contain at least one field'),
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'addresses': ['10.0.40.300/24']}),
     '[networking.os.device.addresses] "ens18": invalid CIDR address: 10.0.40.300/24'),
    ('worker', lambda c: interfaces(c, {'deviceSelector': {'hardwareAddr': 'bc:24:11:*'}, 'addresses': ['ten']}),
     '[networking.os.device.addresses] "": failed to parse IP address "ten"'),
    ('controlplane', lambda c: interfaces(c, {'interface': 'ens18', 'vip': {'ip': '10.0.40'}}),
     '[networking.os.device.vip] failed to parse "10.0.40" as IP address'),
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'routes': [{'network': '0.0.0.0', 'gateway': 'gw'}]}),
     '[networking.os.device.route[0].network] "0.0.0.0": invalid network address'),
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'routes': [{'network': '0.0.0.0/0', 'gateway': 'gw'}]}),
     '[networking.os.device.route[0].gateway] "gw": invalid network address'),
    ('worker', lambda c: interfaces(c, {'interface': 'ens18', 'routes': [{'metric': 10}]}),
     '[networking.os.device.route[0]]: either network or gateway should be set'),
])
def test_upstream_validation_rules(worker, control_plane, role, change, expected):
    config = worker if role == 'worker' else control_plane
    change(config)
    with pytest.raises(ConfigInvalid) as refused:
        validate(yaml.safe_dump(config))
    assert expected in refused.value.errors


def test_devices_selected_either_way_are_valid(worker, control_plane):
    interfaces(control_plane, {'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}, 'addresses': ['10.0.40.11/24'],
                               'routes': [{'network': '0.0.0.0/0', 'gateway': '10.0.40.1'}], 'vip': {'ip': '10.0.40.10'}})
    assert validate(yaml.safe_dump(control_plane))[1] == []
    interfaces(worker, {'interface': 'ens18', 'addresses': ['10.0.40.21'], 'dhcp': False},
               {'interface': 'eth9', 'ignore': True, 'addresses': ['nonsense']})
    assert validate(yaml.safe_dump(worker))[1] == []


def test_a_document_twice_is_refused(worker):
    extra = {'apiVersion': 'v1alpha1', 'kind': 'KmsgLogConfig', 'name': 'remote', 'url': 'tcp://10.0.0.1:514'}
    with pytest.raises(ConfigInvalid) as refused:
        validate('---\n'.join(yaml.safe_dump(d) for d in (worker, extra, extra)))
    assert refused.value.errors == ['duplicate document v1alpha1/KmsgLogConfig/remote is not allowed']
    with pytest.raises(ConfigInvalid, match='duplicate document /v1alpha1/ is not allowed'):
        validate(yaml.safe_dump(worker) + '---\n' + yaml.safe_dump(worker))


def test_strict_mode_turns_warnings_into_prefixed_errors(worker):
    worker['cluster']['clusterName'] = ''
    with pytest.raises(ConfigInvalid) as refused:
        validate(yaml.safe_dump(worker), strict=True)
    assert refused.value.errors == ['warning: cluster.clusterName: cluster name is empty']
