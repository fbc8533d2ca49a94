"""Machine config patches merged as Talos merges them (the shared table of upstream cases), and node_patch."""

import pathlib

import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import talos_config, talos_documents
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TalosError

CASES = yaml.safe_load((pathlib.Path(__file__).parents[3] / 'fixtures' / 'talos' / 'merge_cases.yaml').read_text())['cases']


@pytest.mark.parametrize('case', CASES, ids=[case['name'] for case in CASES])
def test_upstream_merge_case(case):
    if 'error' in case:
        with pytest.raises(TalosError) as found:
            talos_config.apply_patches(case['base'], case['patches'])
        assert case['error'] in str(found.value)
    else:
        assert talos_config.apply_patches(case['base'], case['patches']) == case['expected']


def test_patches_leave_their_input_alone():
    base = [{'version': 'v1alpha1', 'machine': {'certSANs': ['a'], 'network': {'hostname': 'x'}}}]
    patch = {'machine': {'certSANs': ['b'], 'network': {'hostname': {'$patch': 'delete'}}}}
    talos_config.apply_patches(base, [patch])
    assert base == [{'version': 'v1alpha1', 'machine': {'certSANs': ['a'], 'network': {'hostname': 'x'}}}]
    assert patch == {'machine': {'certSANs': ['b'], 'network': {'hostname': {'$patch': 'delete'}}}}


def test_errors_name_the_patch():
    with pytest.raises(TalosError, match=r'^patch 2: failure applying rfc6902 patches .*test failed at /machine/type'):
        talos_config.apply_patches([{'machine': {'type': 'controlplane'}}],
                                   [{'machine': {}}, [{'op': 'test', 'path': '/machine/type', 'value': 'worker'}]])


def test_patch_from_a_file(tmp_path):
    path = tmp_path / 'p.yaml'
    path.write_text('machine:\n  install:\n    wipe: true\n')
    found = talos_config.apply_patches([{'machine': {'install': {'wipe': False}}}], ['@{0}'.format(path)])
    assert found[0]['machine']['install']['wipe'] is True
    with pytest.raises(TalosError, match='patch file'):
        talos_config.apply_patches([{}], ['@{0}'.format(tmp_path / 'missing.yaml')])


def test_documents_compare_in_a_stable_order():
    first = [{'version': 'v1alpha1'}, {'apiVersion': 'v1alpha1', 'kind': 'UserVolumeConfig', 'name': 'data'}]
    assert talos_documents.comparable(first) == talos_documents.comparable(list(reversed(first)))


def test_node_patch_selects_the_device_by_mac():
    patch = talos_config.node_patch(hostname='cp-1', address='10.0.40.11/24', gateway='10.0.40.1', vip='10.0.40.10',
                                    mac='BC:24:11:00:00:01', install_disk='/dev/vda', nameservers=['10.0.40.1'])
    assert patch == {'machine': {
        'network': {'hostname': 'cp-1', 'nameservers': ['10.0.40.1'], 'interfaces': [
            {'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}, 'addresses': ['10.0.40.11/24'],
             'routes': [{'network': '0.0.0.0/0', 'gateway': '10.0.40.1'}], 'vip': {'ip': '10.0.40.10'}}]},
        'install': {'disk': '/dev/vda'}}}
    # A VIP on a DHCP device keeps DHCP on, since configuring the device turns it off otherwise.
    assert talos_config.node_patch(vip='10.0.40.10', mac='bc:24:11:00:00:01')['machine']['network']['interfaces'] == [
        {'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}, 'vip': {'ip': '10.0.40.10'}, 'dhcp': True}]


def test_node_patch_names_the_interface_only_when_told():
    patch = talos_config.node_patch(vip='10.0.40.10', mac='bc:24:11:00:00:01', interface='bond0')
    assert patch['machine']['network']['interfaces'] == [{'interface': 'bond0', 'vip': {'ip': '10.0.40.10'}, 'dhcp': True}]
    with pytest.raises(TalosError, match='give the node its mac'):
        talos_config.node_patch(address='10.0.40.11/24')
    with pytest.raises(TalosError, match="address '10.0.40.11' needs a prefix length"):
        talos_config.node_patch(address='10.0.40.11', mac='bc:24:11:00:00:01')
    assert talos_config.node_patch() == {}
    assert talos_config.node_patch(hostname='w-1') == {'machine': {'network': {'hostname': 'w-1'}}}


def test_node_settings_merge_into_a_device_the_config_already_selects():
    base = [{'version': 'v1alpha1', 'machine': {'network': {'interfaces': [
        {'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}, 'mtu': 1400}]}}}]
    found = talos_config.apply_patches(base, [talos_config.node_patch(vip='10.0.40.10', mac='BC:24:11:00:00:01')])
    assert found[0]['machine']['network']['interfaces'] == [
        {'deviceSelector': {'hardwareAddr': 'bc:24:11:00:00:01'}, 'mtu': 1400, 'vip': {'ip': '10.0.40.10'}, 'dhcp': True}]
