"""Patches read and handed to talosctl as YAML, and a node's own settings as one patch. The merging itself is
talosctl's: the shared table of Talos's merge cases runs through it in tests/lab/unit/test_talos_config.py."""

import pytest
import yaml

from ansible_collections.ephemeral.castle.plugins.module_utils import talos_config, talos_documents
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TalosError


def test_patches_become_yaml_text_talosctl_reads(tmp_path):
    assert yaml.safe_load(talos_config.patch_text({'machine': {'install': {'wipe': True}}})) == {
        'machine': {'install': {'wipe': True}}}
    operations = [{'op': 'remove', 'path': '/machine/install'}]
    assert yaml.safe_load(talos_config.patch_text(operations)) == operations
    assert talos_config.patch_text('machine: {install: {wipe: true}}') == 'machine: {install: {wipe: true}}'
    path = tmp_path / 'p.yaml'
    path.write_text('---\napiVersion: v1alpha1\nkind: HostnameConfig\nhostname: a\n---\nmachine: {}\n')
    assert talos_config.patch_text('@{0}'.format(path)) == path.read_text()


@pytest.mark.parametrize('patch, message', [
    ('just text', 'neither a strategic merge patch (YAML mappings) nor a JSON patch (a list of operations)'),
    ('', 'neither a strategic merge patch'),
    (['remove /machine'], 'a JSON patch is a list of operations (mappings with op and path)'),
    (3, 'a patch must be a mapping, a list of JSON patch operations or text, not int'),
    ('machine: [', 'YAML'),
])
def test_a_patch_that_is_neither_kind_is_refused(patch, message):
    with pytest.raises(TalosError) as found:
        talos_config.patch_text(patch)
    assert message in str(found.value)


def test_a_missing_patch_file_is_named(tmp_path):
    with pytest.raises(TalosError, match='patch file {0}'.format(tmp_path / 'missing.yaml')):
        talos_config.patch_text('@{0}'.format(tmp_path / 'missing.yaml'))


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
