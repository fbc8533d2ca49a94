"""The inventory castle-lab writes."""

from castle_lab import config, inventory
from castle_lab.services import SERVICES


def test_inventory_points_at_every_service_and_names_secret_files(tmp_path):
    cfg = config.load({'CASTLE_LAB_DIR': str(tmp_path), 'CASTLE_LAB_NET': '127.0.44'})
    services = {name: cls(cfg) for name, cls in SERVICES.items()}
    data = inventory.render(cfg, services)
    lab_vars = data['all']['vars']
    assert lab_vars['castle_lab_vault_addr'] == 'https://127.0.44.1:8200'
    assert lab_vars['castle_lab_vault_token'] == "{{ lookup('ansible.builtin.file', '%s') }}" % (
        tmp_path / 'vault' / 'root-token')
    assert lab_vars['castle_lab_gitops_url'] == 'https://127.0.44.3:8443/gitops.git'
    assert lab_vars['castle_lab_gitops_username'] == 'castle'
    assert lab_vars['castle_lab_gitops_token'] == "{{ lookup('ansible.builtin.file', '%s') }}" % (
        tmp_path / 'git' / 'token')
    assert lab_vars['castle_lab_gitops_ca'] == str(tmp_path / 'ca' / 'ca.crt')
    assert lab_vars['castle_lab_flux_version'] == 'v2.9.1'
    assert lab_vars['castle_lab_flux_manifest'] == str(tmp_path / 'git' / 'flux' / 'v2.9.1' / 'install.yaml')
    assert lab_vars['castle_lab_flux_manifest_url'] == 'https://127.0.44.3:8443/flux/v2.9.1/install.yaml'
    assert lab_vars['castle_lab_proxmox_control'] == 'http://127.0.44.2:8007'
    assert lab_vars['castle_cluster_vars']['metallb_addresses'] == '127.0.44.200-127.0.44.220'
    assert lab_vars['castle_flux']['token'] == '{{ castle_lab_gitops_token }}'
    node = data['all']['children']['openclaw']['hosts']['openclaw-node']
    assert node['ansible_host'] == '127.0.44.4'
    assert node['ansible_python_interpreter'] == '/usr/bin/python3'
    assert 'StrictHostKeyChecking=yes' in node['ansible_ssh_common_args']


def test_inventory_leaves_out_services_that_are_not_up(tmp_path):
    cfg = config.load({'CASTLE_LAB_DIR': str(tmp_path)})
    data = inventory.render(cfg, {'git': SERVICES['git'](cfg)})
    assert 'openclaw' not in data['all']['children']
    assert 'castle_lab_vault_addr' not in data['all']['vars']
    assert 'castle_flux' not in data['all']['vars']
