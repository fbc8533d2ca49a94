#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_machine_config
short_description: Render and validate Talos nodes' machine configs
version_added: 0.1.0
description:
  - Generates the config of a control-plane or worker node from the cluster's secrets bundle with
    C(talosctl gen config --with-secrets), then applies, in this order, the cluster patches, the patches
    of the node's role, the node's own settings (hostname, address, gateway, VIP, install disk and
    image) and the node's extra patches, with C(talosctl machineconfig patch), so they merge exactly as Talos
    merges them.
  - The node's address, gateway and VIP go on its network device, selected by its MAC address
    (O(mac), as C(deviceSelector.hardwareAddr)) unless O(interface) names it. Talos 1.5 and later
    name links predictably (C(ens18) for a Proxmox VE VM's first virtio NIC), so C(eth0) matches no link.
  - Validates the result with C(talosctl validate) and returns it. It holds the cluster's keys, so
    register it on a task with C(no_log=true).
  - With O(compare_to_node=true), reads the config the node runs (C(talosctl get machineconfig)) and
    reports whether it differs, with the difference (keys and tokens redacted) in diff mode.
  - With O(machines), renders the configs of many nodes in one run, from one C(talosctl gen config)
    per role, and validates them concurrently; they are returned in RV(configs).
  - Rendering changes nothing; only writing O(dest) does.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.talos
  - ephemeral.castle.talos.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  secrets:
    description:
      - The secrets bundle (YAML), as returned by M(ephemeral.castle.talos_secrets).
      - One of O(secrets) and O(secrets_path) is required.
    type: str
  secrets_path:
    description: File holding the secrets bundle.
    type: path
  cluster_name:
    description: Name of the cluster.
    type: str
    required: true
  cluster_endpoint:
    description: URL of the Kubernetes API, for example C(https://10.0.40.10:6443) (the control-plane VIP).
    type: str
    required: true
  role:
    description:
      - Role of the node; with O(machines), of each machine that does not name its own.
      - Required without O(machines).
    type: str
    choices: [controlplane, worker]
  kubernetes_version:
    description: Kubernetes version to run, for example C(1.34.1); talosctl's default when unset.
    type: str
  talos_version:
    description: Talos version to generate the config for, for example C(v1.11).
    type: str
  additional_sans:
    description: Additional subject alternative names of the API server's certificate.
    type: list
    elements: str
  hostname:
    description: Hostname of the node.
    type: str
  address:
    description: Static address of the node with its prefix length, for example C(10.0.40.11/24).
    type: str
  gateway:
    description: Default gateway, set on the node's network device.
    type: str
  mac:
    description:
      - MAC address of the node's network device (for a Proxmox VE VM, that of C(net0)), for example
        C(BC:24:11:00:00:01). The address, gateway and VIP are set on the device with this address.
      - O(address), O(gateway) and O(vip) need O(mac) or O(interface).
    type: str
  interface:
    description:
      - Name of the link to set the address, gateway and VIP on, instead of selecting it by O(mac), for
        example C(bond0). Talos names links predictably (C(ens18), C(enp0s18)); C(eth0) exists only with
        C(net.ifnames=0) on the kernel command line.
    type: str
  vip:
    description: Shared virtual IP of the control plane, set on the node's network device (control-plane nodes only).
    type: str
  nameservers:
    description: DNS servers of the node, added to the config's list (a patch appends to a list, as Talos merges).
    type: list
    elements: str
  install_disk:
    description: Disk Talos installs to, for example C(/dev/sda).
    type: str
  install_image:
    description: Installer image, for example C(ghcr.io/siderolabs/installer:v1.11.6).
    type: str
  patches:
    description:
      - Patches for every node of the cluster, applied first. Each is a strategic merge patch (a mapping,
        or YAML text of one or more documents), a list of JSON 6902 operations, or C(@path) of a file
        holding either.
    type: list
    elements: raw
    default: []
  role_patches:
    description: Patches by role (keys C(controlplane) and C(worker)), applied after O(patches).
    type: dict
    default: {}
  node_patches:
    description: Patches of this node alone, applied last.
    type: list
    elements: raw
    default: []
  validate:
    description: Validate the config with C(talosctl validate).
    type: bool
    default: true
  validate_mode:
    description: Mode to validate the config for.
    type: str
    choices: [metal, cloud, container]
    default: metal
  compare_to_node:
    description:
      - Compare the config with the one the first of O(nodes) runs. A node still in maintenance mode
        runs none, so it differs.
    type: bool
    default: false
  with_talosconfig:
    description:
      - Also return a talosconfig (client configuration with a new client certificate) signed by the
        bundle's CA, its endpoints set to O(endpoints) when given.
    type: bool
    default: false
  dest:
    description: Also write the config to this file, with mode 0600. Not with O(machines).
    type: path
  machines:
    description:
      - Several nodes at once, each with its own settings; O(role), O(address), O(gateway), O(mac),
        O(interface), O(vip), O(install_disk) and O(node_patches) are then defaults for every machine.
      - Hostnames must be unique. Not with O(compare_to_node) or O(dest).
    type: list
    elements: dict
    suboptions:
      hostname:
        description: Hostname of the node; it names the node's config in RV(configs).
        type: str
        required: true
      role:
        description: Role of the node; O(role) when unset.
        type: str
        choices: [controlplane, worker]
      address:
        description: Static address of the node with its prefix length.
        type: str
      gateway:
        description: Default gateway of the node's network device.
        type: str
      mac:
        description: MAC address of the node's network device; its address, gateway and VIP go on that device.
        type: str
      interface:
        description: Name of the link to set the address, gateway and VIP on, instead of selecting it by O(machines[].mac).
        type: str
      vip:
        description: Shared virtual IP of the control plane (control-plane nodes only).
        type: str
      install_disk:
        description: Disk Talos installs to.
        type: str
      node_patches:
        description: Patches of this node alone, applied last.
        type: list
        elements: raw
"""

EXAMPLES = r"""
- name: Config of the first control-plane node
  ephemeral.castle.talos_machine_config:
    secrets: "{{ talos_secrets.bundle }}"
    cluster_name: lab
    cluster_endpoint: https://10.0.40.10:6443
    role: controlplane
    hostname: cp-1
    mac: BC:24:11:00:00:01
    address: 10.0.40.11/24
    gateway: 10.0.40.1
    vip: 10.0.40.10
    install_disk: /dev/sda
    patches:
      - cluster:
          network:
            cni:
              name: none
    role_patches:
      controlplane:
        - cluster:
            allowSchedulingOnControlPlanes: true
    nodes: [10.0.40.11]
    compare_to_node: true
  register: cp1_config
  no_log: true

- name: Configs of a whole cluster in one run
  ephemeral.castle.talos_machine_config:
    secrets: "{{ talos_secrets.bundle }}"
    cluster_name: lab
    cluster_endpoint: https://10.0.40.10:6443
    install_disk: /dev/sda
    machines:
      - {hostname: cp-1, role: controlplane, mac: "BC:24:11:00:00:01", vip: 10.0.40.10}
      - {hostname: w-1, role: worker}
      - {hostname: w-2, role: worker, node_patches: [{machine: {nodeLabels: {disk: ssd}}}]}
  register: cluster_configs
  no_log: true
"""

RETURN = r"""
config:
  description: The machine config (YAML). It holds the cluster's keys.
  returned: without O(machines)
  type: str
  sample: "version: v1alpha1\nmachine:\n  type: controlplane\n"
config_sha256:
  description: SHA-256 digest of RV(config).
  returned: without O(machines)
  type: str
  sample: 3b1f0c5e8a2d4f6b9c7e1a0d2f4b6c8e0a1c3e5f7b9d1f3a5c7e9b1d3f5a7c9e
differs:
  description: Whether the node runs another config (or none yet).
  returned: with O(compare_to_node=true)
  type: bool
  sample: false
node_state:
  description: C(configured), C(maintenance) or C(unreachable), as found when comparing.
  returned: with O(compare_to_node=true)
  type: str
  sample: configured
configs:
  description: With O(machines), each machine's config and its SHA-256 digest, by hostname.
  returned: with O(machines)
  type: dict
  sample: {"cp-1": {"config": "version: v1alpha1\nmachine:\n  type: controlplane\n", "config_sha256": "3b1f0c5e"}}
talosconfig:
  description: A talosconfig for the cluster. It holds a client key.
  returned: with O(with_talosconfig=true)
  type: str
  sample: "context: lab\ncontexts:\n  lab:\n    endpoints: [10.0.40.10]\n"
"""

import re
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.ephemeral.castle.plugins.module_utils._files import write_private
from ansible_collections.ephemeral.castle.plugins.module_utils.base import run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos import TALOS, TalosError, Talosctl, target_node
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_config import node_patch, patch_text
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_documents import comparable, config_diff, digest, dump_config, load_config
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import parse_yaml_docs


def read_secrets(params):
    if params['secrets']:
        return params['secrets']
    try:
        with open(params['secrets_path']) as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        raise TalosError('secrets_path {0}: {1}'.format(params['secrets_path'], exc))


def generate(talosctl, params, secrets_file, output_type):
    args = ['gen', 'config', params['cluster_name'], params['cluster_endpoint'], '--with-secrets', secrets_file,
            '--output-types', output_type, '--output', '-', '--with-docs=false', '--with-examples=false']
    for flag, key in (('--kubernetes-version', 'kubernetes_version'), ('--talos-version', 'talos_version')):
        if params[key]:
            args += [flag, params[key]]
    if params['additional_sans']:
        args += ['--additional-sans', ','.join(params['additional_sans'])]
    return talosctl.run(args, connect=False, sensitive=True, cwd=talosctl.private_dir)


def talosconfig_for(talosctl, params, secrets_file):
    text = generate(talosctl, params, secrets_file, 'talosconfig')
    docs = parse_yaml_docs(text)
    if not docs or not isinstance(docs[0], dict):
        raise TalosError('talosctl gen config printed no talosconfig')
    config = docs[0]
    if params['endpoints']:
        for context in (config.get('contexts') or {}).values():
            context['endpoints'] = list(params['endpoints'])
    return dump_config([config])


MACHINE_KEYS = ('hostname', 'role', 'address', 'gateway', 'mac', 'interface', 'vip', 'install_disk', 'node_patches')
MAC = re.compile(r'^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$')
# Nodes patched and validated at once (each a `talosctl machineconfig patch` and a `talosctl validate`).
WORKERS = 4


def check_machine(params):
    if params['mac'] and not MAC.match(params['mac']):
        raise TalosError('mac {0!r} of {1} is not a MAC address like BC:24:11:00:00:01'.format(
            params['mac'], params['hostname'] or 'this node'))
    if params['vip'] and params['role'] != 'controlplane':
        raise TalosError('vip is for control-plane nodes; {0} has role {1}'.format(
            params['hostname'] or 'this node', params['role']))
    role_patches = params['role_patches'].get(params['role']) or []
    if not isinstance(role_patches, list):
        raise TalosError('role_patches.{0} must be a list of patches'.format(params['role']))
    return role_patches


def patched(talosctl, params, base_file, role_patches, number):
    """The base config of the node's role with the cluster, role and node patches applied by
    `talosctl machineconfig patch`, as documents."""
    host = params['hostname'] + ': ' if params['machines'] else ''
    try:
        own = node_patch(hostname=params['hostname'], address=params['address'], gateway=params['gateway'],
                         mac=params['mac'], interface=params['interface'], install_disk=params['install_disk'],
                         install_image=params['install_image'], vip=params['vip'], nameservers=params['nameservers'])
    except TalosError as exc:
        raise TalosError('{0}{1}'.format(params['hostname'] + ': ' if params['hostname'] else '', exc))
    args = ['machineconfig', 'patch', base_file]
    for name, patches in (('patches', params['patches']), ('role_patches.' + params['role'], role_patches),
                          ('node settings', [own] if own else []), ('node_patches', params['node_patches'])):
        for position, patch in enumerate(patches or [], 1):
            try:
                text = patch_text(patch)
            except TalosError as exc:
                raise TalosError('{0}{1}: patch {2}: {3}'.format(host, name, position, exc))
            path = talosctl.secret_file('patch-{0}-{1}.yaml'.format(number, len(args)), text)
            args += ['--patch', '@' + path]
    try:
        return load_config(talosctl.run(args, connect=False, sensitive=True, cwd=talosctl.private_dir))
    except TalosError as exc:
        raise TalosError('{0}{1}'.format(host, exc))


def validate(talosctl, params, config, name):
    path = talosctl.secret_file(name, config)
    try:
        talosctl.run(['validate', '--config', path, '--mode', params['validate_mode']], connect=False)
    except TalosError as exc:
        if params['machines']:
            exc.args = ('{0}: {1}'.format(params['hostname'], exc),)
        raise


def machine_params(params):
    """Each machine's parameters: the module's, overridden by what the machine sets."""
    machines = []
    for machine in params['machines']:
        own = {**params, **{k: v for k, v in machine.items() if k in MACHINE_KEYS and v is not None}}
        if not own['role']:
            raise TalosError('machine {0} has no role and role is not set'.format(machine['hostname']))
        machines.append(own)
    hostnames = [m['hostname'] for m in machines]
    twice = sorted(set(h for h in hostnames if hostnames.count(h) > 1))
    if twice:
        raise TalosError('machines lists {0} more than once'.format(', '.join(twice)))
    return machines


def render(module, talosctl):
    params = module.params
    unknown = sorted(set(params['role_patches']) - set(['controlplane', 'worker']))
    if unknown:
        raise TalosError('role_patches has keys {0}; only controlplane and worker are roles'.format(', '.join(unknown)))
    if params['machines'] is not None:
        for option in ('compare_to_node', 'dest'):
            if params[option]:
                raise TalosError('{0} is for one node; it cannot be used with machines'.format(option))
        machines = machine_params(params)
    elif not params['role']:
        raise TalosError('role is required without machines')
    else:
        machines = [params]
    role_patches = [check_machine(machine) for machine in machines]
    secrets = read_secrets(params)
    try:
        parse_yaml_docs(secrets)
    except TalosError as exc:
        raise TalosError('the secrets bundle is not YAML: {0}'.format(exc))
    secrets_file = talosctl.secret_file('secrets.yaml', secrets)
    # Nodes of one role differ only by their patches: one generation per role.
    bases = dict((role, talosctl.secret_file(role + '.yaml', generate(talosctl, params, secrets_file, role)))
                 for role in sorted(set(m['role'] for m in machines)))

    def build(job):
        number, machine, patches = job
        docs = patched(talosctl, machine, bases[machine['role']], patches, number)
        config = dump_config(docs)
        if params['validate']:
            validate(talosctl, machine, config, 'config-{0}.yaml'.format(number))
        return docs, config

    with ThreadPoolExecutor(max_workers=min(WORKERS, len(machines))) as pool:
        built = list(pool.map(build, zip(range(len(machines)), machines, role_patches)))
    docs = [b[0] for b in built]
    configs = [b[1] for b in built]
    if params['machines'] is not None:
        result = dict(changed=False, configs=dict(
            (m['hostname'], dict(config=c, config_sha256=digest(c))) for m, c in zip(machines, configs)))
    else:
        result = dict(changed=False, config=configs[0], config_sha256=digest(configs[0]))
    if params['compare_to_node']:
        node = target_node(talosctl, 'compare the config with')
        state, dummy, detail = talosctl.machine_status(node)
        if state == 'unreachable':
            raise TalosError('node {0} cannot be reached to compare configs: {1}'.format(node, detail))
        running = talosctl.running_config(node) if state == 'configured' else None
        result.update(node_state=state, differs=running is None or comparable(running) != comparable(docs[0]))
        if module._diff:
            result['diff'] = config_diff(running, docs[0])
    if params['with_talosconfig']:
        result['talosconfig'] = talosconfig_for(talosctl, params, secrets_file)
    if params['dest']:
        result['changed'] = write_private(params['dest'], configs[0], module.check_mode)
    return result


def main():
    module = TALOS.module(dict(
        secrets=dict(type='str', no_log=True), secrets_path=dict(type='path', no_log=False),
        cluster_name=dict(type='str', required=True), cluster_endpoint=dict(type='str', required=True),
        role=dict(type='str', choices=['controlplane', 'worker']),
        kubernetes_version=dict(type='str'), talos_version=dict(type='str'),
        additional_sans=dict(type='list', elements='str'),
        hostname=dict(type='str'), address=dict(type='str'), gateway=dict(type='str'),
        mac=dict(type='str'), interface=dict(type='str'), vip=dict(type='str'),
        nameservers=dict(type='list', elements='str'),
        install_disk=dict(type='str'), install_image=dict(type='str'),
        patches=dict(type='list', elements='raw', default=[]), role_patches=dict(type='dict', default={}),
        node_patches=dict(type='list', elements='raw', default=[]),
        validate=dict(type='bool', default=True),
        validate_mode=dict(type='str', default='metal', choices=['metal', 'cloud', 'container']),
        compare_to_node=dict(type='bool', default=False), with_talosconfig=dict(type='bool', default=False),
        dest=dict(type='path'),
        machines=dict(type='list', elements='dict', options=dict(
            hostname=dict(type='str', required=True), role=dict(type='str', choices=['controlplane', 'worker']),
            address=dict(type='str'), gateway=dict(type='str'), mac=dict(type='str'), interface=dict(type='str'),
            vip=dict(type='str'),
            install_disk=dict(type='str'), node_patches=dict(type='list', elements='raw'))),
    ), required_one_of=[('secrets', 'secrets_path')], mutually_exclusive=[('secrets', 'secrets_path')])
    if not module.params['cluster_endpoint'].startswith('https://'):
        module.fail_json(msg='cluster_endpoint {0!r} must be an https:// URL, for example https://10.0.40.10:6443'.format(
            module.params['cluster_endpoint']))
    with Talosctl(module) as talosctl:
        run_module(module, lambda: render(module, talosctl))


if __name__ == '__main__':
    main()
