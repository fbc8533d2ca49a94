"""inventories/lab: what `castle-lab up` writes so that `ansible-playbook -i inventories/lab` just works."""

import secrets
import stat

import yaml

from .git import flux_manifest
from .git.server import USERNAME
from .mesh.topology import DEFAULT_PREFIX, HOSTS as MESH_HOSTS, VAULT_NAME, VAULT_PORT
from .services.factory import FactoryService
from .services.s3 import BUCKET as S3_BUCKET, REGION as S3_REGION
from .talos.factory import DEFAULT_EXTENSIONS, default_iso

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
    factory = services.get('factory')
    if factory:
        lab_vars.update(castle_lab_factory_url=factory.url)
    gitsvc = services.get('git')
    if gitsvc:
        lab_vars.update(castle_lab_gitops_url=gitsvc.url(), castle_lab_gitops_username=USERNAME,
                        castle_lab_gitops_token=_file_lookup(gitsvc.token_file), castle_lab_gitops_ca=str(cfg.ca_cert),
                        castle_lab_flux_version=flux_manifest.VERSION,
                        castle_lab_flux_manifest=str(gitsvc.flux_manifest),
                        castle_lab_flux_manifest_url=gitsvc.flux_manifest_url)
    s3 = services.get('s3')
    if s3:
        lab_vars.update(castle_lab_s3_url=s3.url, castle_lab_s3_bucket=S3_BUCKET, castle_lab_s3_region=S3_REGION,
                        castle_lab_s3_access_key=_file_lookup(s3.access_key_file),
                        castle_lab_s3_secret_key=_file_lookup(s3.secret_key_file), castle_lab_s3_ca=str(cfg.ca_cert),
                        castle_lab_s3_control=s3.control_url)
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
    """What playbooks/talos.yml takes, filled in for the lab's Proxmox and Vault: 3 control-plane and 3 workers,
    the last of them on pve2."""
    nodes = [{'name': 'talos-cp-{0}'.format(i), 'role': 'controlplane'} for i in (1, 2, 3)]
    nodes += [{'name': 'talos-w-{0}'.format(i), 'role': 'worker'} for i in (1, 2, 3)]
    # One worker on the second Proxmox node: cloned from pve1's template, then migrated there.
    nodes[-1]['proxmox_node'] = 'pve2'
    return {'castle_proxmox': {'api_host': '{{ castle_lab_proxmox_host }}', 'api_port': '{{ castle_lab_proxmox_port }}',
                               'api_token_id': '{{ castle_lab_proxmox_token_id }}',
                               'api_token_secret': '{{ castle_lab_proxmox_token_secret }}',
                               'ca_path': '{{ castle_lab_proxmox_ca }}'},
            'castle_vault': {'addr': '{{ castle_lab_vault_addr }}', 'token': '{{ castle_lab_vault_token }}',
                             'cacert': '{{ castle_lab_vault_cacert }}'},
            'castle_talos': {'name': 'castle', 'node': 'pve1', 'template': 'talos-template',
                             # The Image Factory's ISO of the default extensions, which the lab's Proxmox holds.
                             'iso': 'local:iso/' + default_iso()[0], 'version': 'v1.11.6',
                             'extensions': list(DEFAULT_EXTENSIONS), 'factory_url': FactoryService.url_of(cfg),
                             'factory_ca_path': str(cfg.ca_cert),
                             'kubeconfig_path': str(cfg.state / 'talos' / 'castle' / 'kubeconfig'),
                             'talosconfig_path': str(cfg.state / 'talos' / 'castle' / 'talosconfig'),
                             'nodes': nodes}}


class Encrypted(str):
    """A value written as an ansible-vault `!vault` scalar."""


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(Encrypted, lambda dumper, value: dumper.represent_scalar('!vault', str(value), style='|'))

# The lab cluster's services wired to Vault (playbooks/bootstrap.yml): where each runs, and the secrets seeded
# at its KV path, generated once per lab and kept only ansible-vault encrypted in the inventory.
SERVICES = {'blog': {'namespace': 'blog', 'service_account': 'default', 'keys': ('database_password',)},
            'kaze': {'namespace': 'kaze', 'service_account': 'kaze', 'keys': ('api_token', 'knowledge_token')},
            'mcp': {'namespace': 'mcp', 'service_account': 'mcp', 'keys': ('client_secret',)}}


def vault_password_file(cfg):
    return cfg.state / 'vault-pass'


def _service_secrets(cfg):
    """castle_services for the lab: each service's settings and its seeded secrets, ansible-vault encrypted."""
    from ansible.parsing.vault import VaultLib, VaultSecret
    password_file = vault_password_file(cfg)
    if not password_file.exists():
        password_file.write_text(secrets.token_urlsafe(24) + '\n')
        password_file.chmod(stat.S_IRUSR | stat.S_IWUSR)
    vault = VaultLib([('default', VaultSecret(password_file.read_text().strip().encode()))])
    stored = cfg.state / 'service-secrets.vault'  # the generated values, encrypted, kept across `up`s
    if stored.exists():
        values = yaml.safe_load(vault.decrypt(stored.read_bytes()))
    else:
        values = {name: {key: secrets.token_urlsafe(18) for key in spec['keys']} for name, spec in SERVICES.items()}
        stored.write_bytes(vault.encrypt(yaml.safe_dump(values)))
        stored.chmod(stat.S_IRUSR | stat.S_IWUSR)
    return {name: {'namespace': spec['namespace'], 'service_account': spec['service_account'],
                   'data': {key: Encrypted(vault.encrypt(value).decode()) for key, value in values[name].items()}}
            for name, spec in SERVICES.items()}


def _fleet_file(cfg):
    """The repository's lab fleet, moved to this lab's network and state directory."""
    from .config import REPO
    source = REPO / 'inventories' / 'lab' / 'lab.fleet.yml'
    text = source.read_text().replace('127.0.10.', cfg.net + '.')
    text = text.replace('{{ inventory_dir }}/../../.lab', str(cfg.state))
    text = text.replace("inventory_dir ~ '/../../.lab", "'" + str(cfg.state))
    text = text.replace('ansible_user: castle-claw\n', 'ansible_user: {0}\n'.format(cfg.openclaw_user))
    return '# Written by `castle-lab up` from {0} for the lab in {1}.\n'.format(source, cfg.state) + text


def render_mesh(cfg, services):
    """The mesh's inventory: every host as root over its own sshd, the controller, the vault for both."""
    mesh = services['mesh']
    mesh_vars = {'ansible_user': 'root', 'ansible_ssh_private_key_file': str(mesh.client_key),
                 'ansible_ssh_common_args': '-o UserKnownHostsFile={0} -o StrictHostKeyChecking=yes'.format(
                     mesh.known_hosts),
                 'ansible_python_interpreter': '/usr/bin/python3', 'castle_lab_dir': str(cfg.state),
                 'castle_lab_ca': str(cfg.ca_cert), 'castle_lab_mesh_control': mesh.control_url,
                 'castle_lab_mesh_net': mesh.mesh.prefix + '0/24',
                 'castle_lab_mesh_vault_addr': 'https://{0}:{1}'.format(VAULT_NAME, VAULT_PORT)}
    vault = services.get('vault')
    if vault:
        mesh_vars.update(castle_lab_vault_addr=vault.url, castle_lab_vault_cacert=str(cfg.ca_cert),
                         castle_lab_vault_token=_file_lookup(vault.token_file))
    fleet = {host.name: {'ansible_host': mesh.mesh.address(host.name), 'castle_lab_mesh_role': host.role}
             for host in MESH_HOSTS}
    controller = {'localhost': {'ansible_connection': 'local',
                                'ansible_python_interpreter': '{{ ansible_playbook_python }}'}}
    return {'all': {'vars': mesh_vars, 'children': {'mesh': {'hosts': fleet}, 'controller': {'hosts': controller}}}}


def write_mesh(cfg, services):
    """hosts.yml of the mesh's inventory; for a lab other than the default one, also the repository's mesh fleet file
    and group_vars, moved to this lab's mesh network."""
    from .config import REPO
    mesh = services['mesh']
    mesh.inventory_dir.mkdir(parents=True, exist_ok=True)
    path = mesh.inventory_dir / 'hosts.yml'
    path.write_text(HEADER.format(cfg.state) + yaml.safe_dump(render_mesh(cfg, services), sort_keys=False))
    template = REPO / 'inventories' / 'lab-mesh'
    if mesh.inventory_dir != template.resolve():
        for source in [template / 'mesh.fleet.yml'] + sorted(template.glob('group_vars/*.yml')):
            if source.exists():
                target = mesh.inventory_dir / source.relative_to(template)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text('# Written by `castle-lab up` from {0} for the lab in {1}.\n'.format(
                    source, cfg.state) + source.read_text().replace(DEFAULT_PREFIX, mesh.mesh.prefix))
    return path


def write(cfg, services):
    from .config import REPO
    cfg.inventory.mkdir(parents=True, exist_ok=True)
    path = cfg.inventory / 'hosts.yml'
    path.write_text(HEADER.format(cfg.state) + yaml.safe_dump(render(cfg, services), sort_keys=False))
    if services.get('vault'):
        # Beside hosts.yml, in the group_vars ansible reads for it, so that hosts.yml stays plain YAML.
        group_vars = cfg.inventory / 'group_vars' / 'all'
        group_vars.mkdir(parents=True, exist_ok=True)
        (group_vars / 'castle_services.yml').write_text(HEADER.format(cfg.state) + yaml.dump(
            {'castle_services': _service_secrets(cfg)}, Dumper=_Dumper, sort_keys=False))
    if cfg.inventory != (REPO / 'inventories' / 'lab').resolve():
        (cfg.inventory / 'lab.fleet.yml').write_text(_fleet_file(cfg))
    if services.get('mesh'):
        write_mesh(cfg, services)
    return path
