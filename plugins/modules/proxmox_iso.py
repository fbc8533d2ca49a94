#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: proxmox_iso
short_description: Put a file from a URL on Proxmox VE nodes' storage (an ISO by default)
version_added: 0.2.0
description:
  - Makes Proxmox VE download a file from O(url) onto O(storage) of each node in O(nodes) (or O(node)),
    through the API's C(download-url) endpoint, so the file is fetched by the node itself.
  - A storage that is not shared (such as C(local)) is each node's own disk, so a VM on a node needs the
    file on that node's storage; a shared storage holds one copy for every node.
  - A node that already lists the volume (same storage, content type and file name) is left alone, without
    a download. Proxmox VE verifies the download against O(checksum) when it is given, and fails the task
    on a mismatch.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.proxmox
  - ephemeral.castle.proxmox.ACTION_GROUP
  - ephemeral.castle.attributes
options:
  node:
    description:
      - The node to put the file on. Give O(node) or O(nodes).
    type: str
  nodes:
    description:
      - The nodes to put the file on, each on its own storage.
    type: list
    elements: str
  storage:
    description:
      - The storage to download to; it must be a file based storage configured for O(content).
    type: str
    default: local
  url:
    description:
      - The http or https URL the node downloads the file from. Required with O(state=present).
    type: str
  filename:
    description:
      - Name of the file on the storage; the last part of the URL's path when unset.
      - Proxmox VE replaces characters other than letters, digits, C(-), C(_) and C(.) with C(_); so
        does this module when it looks the volume up. An ISO's name ends in C(.iso) or C(.img).
    type: str
  checksum:
    description:
      - The file's expected checksum, verified by Proxmox VE after the download.
    type: str
  checksum_algorithm:
    description:
      - The algorithm of O(checksum).
    type: str
    choices: [md5, sha1, sha224, sha256, sha384, sha512]
  content:
    description:
      - Content type of the file.
    type: str
    choices: [iso, vztmpl, import]
    default: iso
  verify_certificates:
    description:
      - Whether the node verifies the TLS certificate of an https O(url).
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for each node's download task.
      - The older name O(timeout) is an alias.
    type: int
    default: 900
    aliases: [timeout]
  state:
    description:
      - V(present) downloads the file where it is missing; V(absent) deletes it where it is.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The Talos ISO on every node that hosts a VM of the cluster
  ephemeral.castle.proxmox_iso:
    nodes: [pve1, pve2]
    storage: local
    url: https://factory.talos.dev/image/376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba/v1.11.6/metal-amd64.iso
    filename: talos-v1.11.6-376567988ad3-metal-amd64.iso
    checksum: "{{ talos_iso_sha256 }}"
    checksum_algorithm: sha256

- name: Remove it from pve2
  ephemeral.castle.proxmox_iso:
    node: pve2
    filename: talos-v1.11.6-376567988ad3-metal-amd64.iso
    state: absent
"""

RETURN = r"""
volid:
  description: The volume ID of the file, the same on every node.
  returned: always
  type: str
  sample: local:iso/talos-v1.11.6-376567988ad3-metal-amd64.iso
nodes:
  description: Per node, the volume ID, whether this run changed it, and its size in bytes (null when absent).
  returned: always
  type: dict
  sample:
    pve1: {"volid": "local:iso/talos-v1.11.6-metal-amd64.iso", "changed": false, "size": 104857600}
    pve2: {"volid": "local:iso/talos-v1.11.6-metal-amd64.iso", "changed": true, "size": 104857600}
"""

import posixpath
import re
from urllib.parse import urlsplit

from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.proxmox import LAYER, ProxmoxClient, ProxmoxError

# pve-storage: the file names download-url accepts per content type.
FILE_NAMES = {
    'iso': (re.compile(r'[^/]+\.(?:iso|img)$', re.IGNORECASE), 'end in .iso or .img'),
    'vztmpl': (re.compile(r'[^/]+\.tar\.(?:gz|xz|zst|bz2)$'), 'end in .tar.gz, .tar.xz, .tar.zst or .tar.bz2'),
    'import': (re.compile(r'[^/]+\.(?:ova|ovf|qcow2|raw|vmdk)$'), 'end in .ova, .ovf, .qcow2, .raw or .vmdk'),
}


def normalise_filename(name):
    """The name PVE stores the file under (normalize_content_filename)."""
    return re.sub(r'[^-a-zA-Z0-9_.]', '_', name)


def file_name(params):
    name = params['filename']
    if not name:
        if not params['url']:
            raise ProxmoxError('give filename (or url, whose last path part names the file)')
        name = posixpath.basename(urlsplit(params['url']).path)
        if not name:
            raise ProxmoxError('url {0!r} names no file; give filename'.format(params['url']))
    name = normalise_filename(name)
    pattern, rule = FILE_NAMES[params['content']]
    if not pattern.match(name):
        raise ProxmoxError('filename {0!r}: a file of content {1} must {2}'.format(name, params['content'], rule))
    return name


def listed(client, node, storage, content, volid):
    """The node's entry of the volume in the storage's content listing, or None."""
    for entry in client.get('nodes/{0}/storage/{1}/content'.format(node, storage), content=content):
        if entry.get('volid') == volid:
            return entry
    return None


def put_in_place(module):
    """The file present (or absent) on every node; returns the module's result."""
    params = module.params
    if params['nodes'] is not None and not params['nodes']:
        raise ProxmoxError('nodes is empty: give at least one node')
    nodes = params['nodes'] or [params['node']]
    if params['state'] == 'present' and not params['url']:
        raise ProxmoxError('url is required with state present')
    url = params['url'] or ''
    if url and not re.match(r'^https?://', url):
        raise ProxmoxError('url {0!r} must be an http or https URL'.format(url))
    name = file_name(params)
    storage, content = params['storage'], params['content']
    volid = '{0}:{1}/{2}'.format(storage, content, name)
    client = ProxmoxClient(params)
    results, before, after = {}, {}, {}
    for node in nodes:
        entry = listed(client, node, storage, content, volid)
        before[node] = 'present' if entry else 'absent'
        after[node] = params['state']
        changed = (entry is None) == (params['state'] == 'present')
        size = entry.get('size') if entry else None
        if changed and not module.check_mode:
            if params['state'] == 'present':
                options = {'url': url, 'content': content, 'filename': name,
                           'verify-certificates': int(params['verify_certificates'])}
                if params['checksum']:
                    options.update({'checksum': params['checksum'], 'checksum-algorithm': params['checksum_algorithm']})
                client.run_task(node, 'post', 'nodes/{0}/storage/{1}/download-url'.format(node, storage),
                                'download of {0} to {1} on node {2}'.format(url, volid, node), params['wait_timeout'],
                                options)
                entry = listed(client, node, storage, content, volid)
                if entry is None:
                    raise ProxmoxError('download to {0} on node {1} ended, but the storage does not list it'.format(
                        volid, node))
                size = entry.get('size')
            else:
                client.run_task(node, 'delete', 'nodes/{0}/storage/{1}/content/{2}'.format(node, storage, volid),
                                'removal of {0} on node {1}'.format(volid, node), params['wait_timeout'])
                size = None
        results[node] = dict(volid=volid, changed=changed, size=size)
    changed = any(result['changed'] for result in results.values())
    outcome = dict(changed=changed, volid=volid, nodes=results)
    if module._diff:
        outcome['diff'] = {'before': {volid: before}, 'after': {volid: after}}
    return outcome


def main():
    module = LAYER.module(
        dict(node=option('str'), nodes=option('list', elements='str'), storage=option('str', 'local'),
             url=option('str'), filename=option('str'), checksum=option('str'),
             checksum_algorithm=option('str', choices=['md5', 'sha1', 'sha224', 'sha256', 'sha384', 'sha512']),
             content=option('str', 'iso', choices=['iso', 'vztmpl', 'import']),
             verify_certificates=option('bool', True), wait_timeout=option('int', 900, aliases=['timeout']),
             state=option('str', 'present', choices=['present', 'absent'])),
        required_together=[('checksum', 'checksum_algorithm')], mutually_exclusive=[('node', 'nodes')],
        required_one_of=[('node', 'nodes')])
    run_module(module, lambda: put_in_place(module))


if __name__ == '__main__':
    main()
