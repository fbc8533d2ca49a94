#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: openclaw_config
short_description: Merge settings into an OpenClaw gateway's JSON config file
version_added: 0.1.0
description:
  - Merges the nested object O(merge) into OpenClaw's config file (C(~/.openclaw/openclaw.json) by default)
    on the gateway node. Objects merge key by key, any other value (string, number, list) replaces the
    one in the file, and a null value removes the key.
  - Every key the merge does not name stays as it is, so the entries of other plugins, the install
    records the C(openclaw) CLI keeps and the user's own settings survive.
  - The file is rewritten only when its content changes, as JSON with a 2-space indent and the existing
    key order (new keys go last); a file that already holds the same content in another layout is left
    untouched.
  - With O(validate), the merged file is first written next to the config and checked, for example by
    C(openclaw config validate), and replaces it only when the check passes.
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.attributes
options:
  path:
    description:
      - The config file. OpenClaw reads C(~/.openclaw/openclaw.json) unless E(OPENCLAW_CONFIG_PATH)
        or E(OPENCLAW_STATE_DIR) point elsewhere for the gateway.
    type: path
    default: ~/.openclaw/openclaw.json
  merge:
    description:
      - Nested object merged into the file; nesting C(plugins), C(entries), C(kaze), C(config) and
        C(runtimeUrl) sets the key C(plugins.entries.kaze.config.runtimeUrl) and nothing else.
      - Values are shown in the diff and the result; keep secrets in the gateway's environment file or in
        SecretRefs, not here.
    type: dict
    required: true
  create:
    description:
      - Create the file (and its directory, mode 0700) when it does not exist.
    type: bool
    default: true
  mode:
    description:
      - Permissions of the file. A file the module creates gets C(0600) unless this is set.
    type: raw
  backup:
    description:
      - Keep a timestamped copy of the previous file before replacing it.
    type: bool
    default: false
  validate:
    description:
      - Command that checks the merged file before it replaces the config; C(%s) stands for the path
        of the merged file. A non-zero exit fails the task and leaves the config untouched.
      - For OpenClaw, C(env OPENCLAW_CONFIG_PATH=%s openclaw config validate) applies the gateway's
        own schema, plugin config schemas included.
    type: str
notes:
  - O(validate) does not run in check mode.
  - Only plain JSON can be merged. A file with comments or other JSON5 syntax is refused with a clear
    message rather than rewritten without them.
seealso:
  - name: OpenClaw configuration reference
    description: The keys of openclaw.json.
    link: https://docs.openclaw.ai/gateway/configuration-reference
"""

EXAMPLES = r"""
- name: Point the Kaze plugin at its services
  ephemeral.castle.openclaw_config:
    merge:
      plugins:
        entries:
          kaze:
            config:
              runtimeUrl: http://kaze-runtime.internal:8080
              knowledgeUrl: http://kaze-knowledge.internal:8080
    validate: env OPENCLAW_CONFIG_PATH=%s openclaw config validate
    backup: true

- name: Remove a stale entry
  ephemeral.castle.openclaw_config:
    path: /srv/openclaw/.openclaw/openclaw.json
    merge:
      plugins:
        entries:
          old-plugin: null
"""

RETURN = r"""
path:
  description: The config file.
  returned: always
  type: str
  sample: /home/openclaw/.openclaw/openclaw.json
changed_keys:
  description: Dotted paths whose value the merge added, changed or removed.
  returned: always
  type: list
  elements: str
  sample: [plugins.entries.kaze.config.runtimeUrl]
backup_file:
  description: The copy of the previous file, when O(backup=true) and the file changed.
  returned: changed and O(backup=true)
  type: str
  sample: /home/openclaw/.openclaw/openclaw.json.12345.2026-11-23@21:40:00~
"""

import os

from ansible_collections.ephemeral.castle.plugins.module_utils import openclaw
from ansible_collections.ephemeral.castle.plugins.module_utils._files import write_temp
from ansible_collections.ephemeral.castle.plugins.module_utils.base import Layer, option, run_module
from ansible_collections.ephemeral.castle.plugins.module_utils.openclaw import OpenClawConfigError

NEW_FILE_MODE = 0o600


def validate(module, command, temp):
    if '%s' not in command:
        raise OpenClawConfigError('validate must contain %s (the merged file), got {0!r}'.format(command))
    rc, out, err = module.run_command(command % temp)
    if rc != 0:
        raise OpenClawConfigError('the merged config failed validation ({0} exited {1}): {2}'.format(
            command, rc, (err or out).strip()))


def replace(module, path, text, exists):
    params = module.params
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=0o700)
    temp = write_temp(path, text, os.stat(path).st_mode & 0o7777 if exists else NEW_FILE_MODE)
    try:
        if params['validate']:
            validate(module, params['validate'], temp)
        backup = module.backup_local(path) if params['backup'] and exists else None
        module.atomic_move(temp, path)
        if not exists:
            os.chmod(path, NEW_FILE_MODE)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return backup


def run(module):
    params = module.params
    path = params['path']
    text, current = openclaw.read(path)
    exists = text is not None
    if not exists and not params['create']:
        raise OpenClawConfigError('{0} does not exist and create=false'.format(path))
    desired = openclaw.merge(current, params['merge'])
    changed = not exists or desired != current
    new_text = openclaw.render(desired) if changed else text
    result = {'changed': changed, 'path': path, 'changed_keys': openclaw.changed_keys(current, desired)}
    if changed and not module.check_mode:
        backup = replace(module, path, new_text, exists)
        if backup:
            result['backup_file'] = backup
    if params['mode'] is not None and (exists or not module.check_mode):
        result['changed'] = module.set_mode_if_different(path, params['mode'], result['changed'])
    if module._diff:
        result['diff'] = {'before_header': path, 'after_header': path, 'before': text or '', 'after': new_text}
    return result


def update(module):
    try:
        return run(module)
    except (IOError, OSError) as exc:
        raise OpenClawConfigError('cannot update {0}: {1}'.format(module.params['path'], exc))


def main():
    module = Layer().module(dict(
        path=option('path', '~/.openclaw/openclaw.json'),
        merge=option('dict', required=True),
        create=option('bool', True),
        mode=option('raw'),
        backup=option('bool', False),
        validate=option('str'),
    ))
    run_module(module, lambda: update(module))


if __name__ == '__main__':
    main()
