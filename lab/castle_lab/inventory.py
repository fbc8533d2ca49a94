"""inventories/lab: what `castle-lab up` writes so that `ansible-playbook -i inventories/lab` just works."""

import yaml

from . import flux_manifest
from .git_server import USERNAME

HEADER = '# Written by `castle-lab up` for the lab in {0}; rewritten on every run.\n'


def _file_lookup(path):
    # Secrets stay in the lab's 0600 files; the inventory names them, it does not hold them.
    return "{{{{ lookup('ansible.builtin.file', '{0}') }}}}".format(path)


def render(cfg, services):
    """The inventory for the started services, as a dict."""
    lab_vars = {'castle_lab_dir': str(cfg.state), 'castle_lab_ca': str(cfg.ca_cert)}
    groups = {'controller': {'hosts': {'localhost': {
        'ansible_connection': 'local', 'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}}}
    vault = services.get('vault')
    if vault:
        lab_vars.update(castle_lab_vault_addr=vault.url, castle_lab_vault_cacert=str(cfg.ca_cert),
                        castle_lab_vault_token=_file_lookup(vault.token_file))
    pve = services.get('proxmox')
    if pve:
        lab_vars.update(castle_lab_proxmox_host=pve.address, castle_lab_proxmox_port=pve.port,
                        castle_lab_proxmox_token_id=pve.token_id,
                        castle_lab_proxmox_token_secret=_file_lookup(pve.token_file),
                        castle_lab_proxmox_ca=str(cfg.ca_cert), castle_lab_proxmox_control=pve.control_url)
    gitsvc = services.get('git')
    if gitsvc:
        lab_vars.update(castle_lab_gitops_url=gitsvc.url(), castle_lab_gitops_username=USERNAME,
                        castle_lab_gitops_token=_file_lookup(gitsvc.token_file), castle_lab_gitops_ca=str(cfg.ca_cert),
                        castle_lab_flux_version=flux_manifest.VERSION,
                        castle_lab_flux_manifest=str(gitsvc.flux_manifest),
                        castle_lab_flux_manifest_url=gitsvc.flux_manifest_url)
    kube = services.get('kube')
    if kube:
        lab_vars.update(castle_lab_kubeconfig=str(kube.kubeconfig), castle_lab_kube_control=kube.control_url)
    if gitsvc and kube:
        lab_vars.update(_cluster_inputs(cfg))
    if pve and vault:
        lab_vars.update(_talos_inputs(cfg))
    claw = services.get('openclaw')
    if claw:
        groups['openclaw'] = {'hosts': {'openclaw-node': {
            'ansible_host': claw.address, 'ansible_port': claw.port, 'ansible_user': claw.user,
            'ansible_ssh_private_key_file': str(claw.client_key),
            'ansible_ssh_common_args': '-o UserKnownHostsFile={0} -o StrictHostKeyChecking=yes'.format(
                claw.known_hosts),
            # The node's own system Python; the controller's pyenv shims mean nothing there.
            'ansible_python_interpreter': '/usr/bin/python3'}}}
    return {'all': {'vars': lab_vars, 'children': groups}}


def _cluster_inputs(cfg):
    """What playbooks/flux.yml takes for a cluster, filled in for the lab's kube and git services."""
    return {'castle_kubeconfig': '{{ castle_lab_kubeconfig }}',
            'castle_cluster_vars': {'cluster_name': 'lab', 'cluster_domain': 'lab.castle.internal',
                                    # MetalLB hands out addresses of the lab's own loopback network.
                                    'metallb_addresses': '{0}-{1}'.format(cfg.address(200), cfg.address(220))},
            'castle_flux': {'url': '{{ castle_lab_gitops_url }}', 'branch': 'main', 'path': './clusters/lab',
                            'auth': 'token', 'username': '{{ castle_lab_gitops_username }}',
                            'token': '{{ castle_lab_gitops_token }}', 'ca_path': '{{ castle_lab_gitops_ca }}',
                            'version': '{{ castle_lab_flux_version }}',
                            'manifest_path': '{{ castle_lab_flux_manifest }}'}}


def _talos_inputs(cfg):
    """What playbooks/talos.yml takes, filled in for the lab's Proxmox and Vault: 3 control-plane and 3 workers."""
    nodes = [{'name': 'talos-cp-{0}'.format(i), 'role': 'controlplane'} for i in (1, 2, 3)]
    nodes += [{'name': 'talos-w-{0}'.format(i), 'role': 'worker'} for i in (1, 2, 3)]
    return {'castle_proxmox': {'api_host': '{{ castle_lab_proxmox_host }}', 'api_port': '{{ castle_lab_proxmox_port }}',
                               'api_token_id': '{{ castle_lab_proxmox_token_id }}',
                               'api_token_secret': '{{ castle_lab_proxmox_token_secret }}',
                               'ca_path': '{{ castle_lab_proxmox_ca }}'},
            'castle_vault': {'addr': '{{ castle_lab_vault_addr }}', 'token': '{{ castle_lab_vault_token }}',
                             'cacert': '{{ castle_lab_vault_cacert }}'},
            'castle_talos': {'name': 'castle', 'node': 'pve1', 'template': 'talos-template',
                             'iso': 'local:iso/talos-v1.11.6-metal-amd64.iso',
                             'kubeconfig_path': str(cfg.state / 'talos' / 'castle' / 'kubeconfig'),
                             'talosconfig_path': str(cfg.state / 'talos' / 'castle' / 'talosconfig'),
                             'nodes': nodes}}


def write(cfg, services):
    cfg.inventory.mkdir(parents=True, exist_ok=True)
    path = cfg.inventory / 'hosts.yml'
    path.write_text(HEADER.format(cfg.state) + yaml.safe_dump(render(cfg, services), sort_keys=False))
    return path
