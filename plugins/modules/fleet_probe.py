#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

DOCUMENTATION = r"""
module: fleet_probe
short_description: One HTTP request along a fleet path, from the machine it starts on, with its latency
version_added: 0.1.0
description:
  - Runs on the machine where a path starts (for a tunnel, the machine it listens on) and sends one C(GET) to
    O(url), so the answer proves the whole path, from the listener through the ssh connection behind it to the
    service at its end.
  - Any HTTP answer counts as an answer (a tunnel whose far end is down fails to connect or resets instead); with
    O(expect), the body must also contain that text.
  - Never changes anything. By default a path that does not answer is returned, not failed, so a drill can report
    every path (O(fail_on_error) fails instead).
author:
  - ephemeral.castle maintainers (@ephemeral-castle)
extends_documentation_fragment:
  - ephemeral.castle.attributes.INFO_MODULE
options:
  url:
    description: The C(http://) or C(https://) address to request, e.g. a tunnel's listening address and port.
    type: str
    required: true
  expect:
    description: Text the answer's body must contain.
    type: str
  timeout:
    description: Seconds to wait for the answer.
    type: float
    default: 5
  fail_on_error:
    description: Fail when the path does not answer (or the body lacks O(expect)).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: The blog answers through its tunnel on railiance01
  ephemeral.castle.fleet_probe:
    url: http://127.0.0.1:18080/
    expect: blog
  delegate_to: railiance01
  register: path
"""

RETURN = r"""
ok:
  description: Whether the path answered (and its body held O(expect)).
  returned: always
  type: bool
  sample: true
status:
  description: The HTTP status of the answer; null when none came.
  returned: always
  type: int
  sample: 200
latency_ms:
  description: Milliseconds from the request to the end of the answer (or to the failure).
  returned: always
  type: float
  sample: 3.2
error:
  description: Why the path did not answer; null when it did.
  returned: always
  type: str
  sample: "connection refused"
"""

import socket
import time
import urllib.error

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url


def probe(url, timeout, expect):
    began = time.monotonic()
    status, body, error = None, '', None
    try:
        # No proxy: a path starts on this machine, which a proxy would leave.
        with open_url(url, method='GET', timeout=timeout, use_proxy=False, follow_redirects='none') as answer:
            status, body = answer.status, answer.read(65536).decode('utf-8', 'replace')
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read(65536).decode('utf-8', 'replace')
    except (urllib.error.URLError, OSError, socket.timeout) as exc:
        reason = getattr(exc, 'reason', exc)
        error = getattr(reason, 'strerror', None) or str(reason) or type(reason).__name__
    latency = round((time.monotonic() - began) * 1000, 1)
    if status is not None and expect and expect not in body:
        error = 'the answer ({0}) does not contain {1!r}'.format(status, expect)
    return {'ok': error is None, 'status': status, 'latency_ms': latency, 'error': error}


def main():
    module = AnsibleModule(argument_spec={
        'url': {'type': 'str', 'required': True}, 'expect': {'type': 'str'},
        'timeout': {'type': 'float', 'default': 5}, 'fail_on_error': {'type': 'bool', 'default': False}},
        supports_check_mode=True)
    url = module.params['url']
    if not url.startswith(('http://', 'https://')):
        module.fail_json(msg='url: expected an http:// or https:// address, got {0!r}'.format(url))
    result = probe(url, module.params['timeout'], module.params['expect'])
    if not result['ok'] and module.params['fail_on_error']:
        module.fail_json(msg='{0}: {1}'.format(url, result['error']), **result)
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
