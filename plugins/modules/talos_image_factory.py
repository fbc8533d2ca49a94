#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: talos_image_factory
short_description: A Talos Image Factory schematic for system extensions, its ISO and its installer image
version_added: 0.1.0
description:
  - Computes the Image Factory schematic of O(extensions) and O(extra_kernel_args) offline, its canonical YAML
    and its ID, the SHA-256 of that text, as the factory computes it (siderolabs/image-factory pkg/schematic).
  - Returns the URL of the schematic's ISO for O(version), a storage file name for it that changes with the
    schematic and the version, and the installer image for the machine config's C(machine.install.image).
  - With O(register=true), makes sure the factory knows the schematic, which it needs before it serves the ISO or
    the installer, by asking C(GET /schematics/<id>) and posting C(POST /schematics) only when the factory answers 404. Posting a
    schematic the factory has is a no-op upstream, so a second run changes nothing.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.attributes
attributes:
  check_mode:
    description: Runs in check mode, reporting whether it would change anything while changing nothing.
    support: full
    details: The schematic is computed offline; the factory is asked whether it has it, and nothing is posted.
options:
  extensions:
    description:
      - Official system extensions, for example C(siderolabs/qemu-guest-agent); a name without C(siderolabs/) gets
        it. Duplicates are dropped and the names sorted, so the same set always gives the same schematic.
    type: list
    elements: str
    default: []
  extra_kernel_args:
    description:
      - Extra kernel arguments, one per item, in the order given.
    type: list
    elements: str
    default: []
  version:
    description:
      - Talos version (a release tag such as C(v1.11.6)) of the ISO and the installer image. Without it only the
        schematic and its ID are returned.
    type: str
  factory_url:
    description:
      - Base URL of the Image Factory. The installer image is on its host (its registry frontend).
    type: str
    default: https://factory.talos.dev
  platform:
    description:
      - Talos platform of the ISO and the installer.
    type: str
    default: metal
  arch:
    description:
      - Architecture of the ISO.
    type: str
    choices: [amd64, arm64]
    default: amd64
  register:
    description:
      - Make sure the factory has the schematic (see the description).
    type: bool
    default: true
  validate_certs:
    description:
      - Verify the factory's TLS certificate.
    type: bool
    default: true
  ca_path:
    description:
      - CA bundle to verify the factory's certificate with, instead of the system's.
    type: path
  timeout:
    description:
      - Seconds to wait for each answer of the factory.
    type: int
    default: 30
"""

EXAMPLES = r"""
- name: Schematic with the guest agent and what Longhorn needs, registered at the factory
  ephemeral.castle.talos_image_factory:
    extensions: [siderolabs/qemu-guest-agent, siderolabs/iscsi-tools, siderolabs/util-linux-tools]
    version: v1.11.6
  register: factory

- name: Configs install the factory's installer image
  ansible.builtin.debug:
    msg: "{{ factory.installer_image }} from {{ factory.iso_url }}"
"""

RETURN = r"""
schematic:
  description: The schematic's canonical YAML, the text whose SHA-256 is its ID.
  returned: always
  type: str
  sample: "customization:\n    systemExtensions:\n        officialExtensions:\n            - siderolabs/qemu-guest-agent\n"
schematic_id:
  description: The schematic's ID.
  returned: always
  type: str
  sample: ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515
extensions:
  description: The official extensions of the schematic, full names, sorted.
  returned: always
  type: list
  elements: str
  sample: [siderolabs/qemu-guest-agent]
iso_url:
  description: URL of the schematic's ISO for the version, platform and arch.
  returned: when O(version) is given
  type: str
  sample: https://factory.talos.dev/image/ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515/v1.11.6/metal-amd64.iso
iso_filename:
  description: A storage file name for that ISO, C(talos-<version>-<platform>-<arch>-<first 12 of the ID>.iso).
  returned: when O(version) is given
  type: str
  sample: talos-v1.11.6-metal-amd64-ce4c980550dd.iso
installer_image:
  description: The factory's installer image for the schematic and version (C(<platform>-installer) from Talos v1.10).
  returned: when O(version) is given
  type: str
  sample: factory.talos.dev/metal-installer/ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515:v1.11.6
factory_url:
  description: The factory's base URL, without a trailing slash.
  returned: always
  type: str
  sample: https://factory.talos.dev
registered:
  description: Whether the factory has the schematic after this run (false when O(register=false)).
  returned: always
  type: bool
"""

import json

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible.module_utils.urls import open_url

from ansible_collections.ephemeral.castle.plugins.module_utils import talos_factory
from ansible_collections.ephemeral.castle.plugins.module_utils.base import option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.talos_factory import FACTORY, FactoryError


def _request(module, method, url, data=None):
    """(status, body) of a factory request; FactoryError on a connection error."""
    params = module.params
    try:
        response = open_url(url, method=method, data=data, validate_certs=params['validate_certs'],
                            ca_path=params['ca_path'], timeout=params['timeout'],
                            headers={'Content-Type': 'application/yaml'} if data is not None else None)
        return response.getcode(), to_text(response.read())
    except HTTPError as exc:
        return exc.code, to_text(exc.read() or b'').strip()
    except (URLError, OSError, ValueError) as exc:
        raise FactoryError('the Image Factory at {0} could not be reached ({1} {2}): {3}'.format(
            params['factory_url'], method, url, getattr(exc, 'reason', exc)))


def register(module, found):
    """Whether a POST was (or, in check mode, would be) needed."""
    base = found['factory_url']
    status, body = _request(module, 'GET', '{0}/schematics/{1}'.format(base, found['schematic_id']))
    if status == 200:
        return False
    if status != 404:
        raise FactoryError('the Image Factory at {0} answered {1} to GET /schematics/{2}: {3}'.format(
            base, status, found['schematic_id'], body))
    if module.check_mode:
        return True
    status, body = _request(module, 'POST', base + '/schematics', data=found['schematic'].encode('utf-8'))
    if status not in (200, 201):
        raise FactoryError('the Image Factory at {0} refused the schematic ({1}): {2}'.format(base, status, body),
                           schematic=found['schematic'])
    try:
        answered = json.loads(body)['id']
    except (ValueError, KeyError, TypeError):
        raise FactoryError('the Image Factory at {0} answered POST /schematics with {1!r}, not an ID'.format(
            base, body))
    if answered != found['schematic_id']:
        raise FactoryError('the Image Factory at {0} gave the schematic the ID {1}, not the {2} computed here: '
                           'its canonical form differs'.format(base, answered, found['schematic_id']),
                           schematic=found['schematic'])
    return True


def schematic(module):
    params = module.params
    found = talos_factory.describe(params['extensions'], params['extra_kernel_args'], params['version'],
                                   params['factory_url'], params['platform'], params['arch'])
    changed = register(module, found) if params['register'] else False
    result = dict(found, changed=changed, registered=params['register'] and not (module.check_mode and changed))
    if module._diff:
        result['diff'] = {'before': '' if changed else found['schematic'], 'after': found['schematic'],
                          'before_header': 'factory schematic {0}'.format(found['schematic_id']),
                          'after_header': 'factory schematic {0}'.format(found['schematic_id'])}
    return result


def main():
    module = FACTORY.module(dict(
        extensions=option('list', [], elements='str'),
        extra_kernel_args=option('list', [], elements='str'),
        version=option('str'),
        platform=option('str', 'metal'),
        arch=option('str', 'amd64', choices=list(talos_factory.ARCHES)),
        register=option('bool', True),
    ))
    run_module(module, lambda: schematic(module))


if __name__ == '__main__':
    main()
