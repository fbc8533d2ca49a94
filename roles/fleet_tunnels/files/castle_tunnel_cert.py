# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""python3 castle-tunnel-cert CONFIG: keep a tunnel actor's SSH certificate fresh.

Installed by the ephemeral.castle fleet_tunnels role and run by the actor's timer. When the certificate is missing,
is for another key, or has less than `renew_before` seconds left, the machine logs in to Vault/OpenBao with its
own AppRole, has the SSH engine sign the actor's public key (the private key never leaves the machine), writes the
certificate beside the key and revokes the login token. Prints one line: `valid until ...` or `renewed, valid
until ...`; exits 1 with the reason on failure. Standard library only."""

import base64
import datetime
import json
import os
import ssl
import struct
import sys
import time
import urllib.error
import urllib.request


def fail(message):
    print('castle-tunnel-cert: ' + message, file=sys.stderr)
    sys.exit(1)


def _fields(blob, count):
    """The first `count` length-prefixed strings of an SSH wire blob, and the offset after them."""
    out, at = [], 0
    while len(out) < count:
        size = struct.unpack('>I', blob[at:at + 4])[0]
        out.append(blob[at + 4:at + 4 + size])
        at += 4 + size
    return out, at


def certificate(path):
    """(public key bytes, valid_after, valid_before) of an ed25519 user certificate, or None if unreadable."""
    try:
        with open(path) as handle:
            kind, data = handle.read().split()[:2]
        blob = base64.b64decode(data)
        if kind != 'ssh-ed25519-cert-v01@openssh.com':
            return None
        fields, at = _fields(blob, 3)  # type, nonce, the ed25519 key
        key = fields[2]
        at += 12  # serial (uint64), type (uint32)
        used = _fields(blob[at:], 2)[1]  # past the key id and the principals
        after, before = struct.unpack('>QQ', blob[at + used:at + used + 16])
        return key, after, before
    except (OSError, ValueError, struct.error):
        return None


def public_key(path):
    with open(path) as handle:
        text = handle.read().strip()
    kind, data = text.split()[:2]
    if kind != 'ssh-ed25519':
        fail('{0}: expected an ssh-ed25519 public key, got {1}'.format(path, kind))
    return text, _fields(base64.b64decode(data), 2)[0][1]


def call(cfg, context, path, payload, token=None):
    request = urllib.request.Request('{0}/v1/{1}'.format(cfg['vault_addr'].rstrip('/'), path),
                                     data=json.dumps(payload).encode(), method='POST',
                                     headers={'Content-Type': 'application/json'})
    if token:
        request.add_header('X-Vault-Token', token)
    try:
        with urllib.request.urlopen(request, context=context, timeout=30) as answer:
            body = answer.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode('utf-8', 'replace')
        try:
            detail = '; '.join(json.loads(detail).get('errors') or []) or detail
        except ValueError:
            pass
        fail('{0}: HTTP {1}: {2}'.format(path, exc.code, detail.strip()[:300]))
    except (urllib.error.URLError, OSError) as exc:
        fail('{0}: {1}'.format(cfg['vault_addr'], getattr(exc, 'reason', exc)))
    return json.loads(body) if body else {}


def when(stamp):
    try:
        return datetime.datetime.fromtimestamp(stamp, datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
    except (OverflowError, OSError, ValueError):
        return 'forever'


def main(argv):
    if len(argv) != 2:
        fail('usage: castle-tunnel-cert CONFIG')
    with open(argv[1]) as handle:
        cfg = json.load(handle)
    text, key = public_key(cfg['key'] + '.pub')
    now = time.time()
    found = certificate(cfg['cert'])
    if found and found[0] == key and found[1] <= now and found[2] - now > cfg['renew_before']:
        print('valid until {0}'.format(when(found[2])))
        return
    with open(cfg['approle_file']) as handle:
        approle = json.load(handle)
    context = ssl.create_default_context(cafile=cfg.get('vault_cacert') or None)
    login = call(cfg, context, 'auth/{0}/login'.format(cfg['approle_mount']),
                 {'role_id': approle['role_id'], 'secret_id': approle['secret_id']})
    token = login['auth']['client_token']
    try:
        signed = call(cfg, context, '{0}/sign/{1}'.format(cfg['ssh_mount'], cfg['ssh_role']),
                      {'public_key': text, 'valid_principals': cfg['principal'], 'cert_type': 'user'}, token)
    finally:
        call(cfg, context, 'auth/token/revoke-self', {}, token)
    partial = cfg['cert'] + '.new'
    with open(partial, 'w') as handle:
        handle.write(signed['data']['signed_key'].strip() + '\n')
    os.chmod(partial, 0o644)
    os.replace(partial, cfg['cert'])
    found = certificate(cfg['cert'])
    if not found or found[0] != key:
        fail('{0}: the signed certificate is not for {1}.pub'.format(cfg['cert'], cfg['key']))
    print('renewed, valid until {0}'.format(when(found[2])))


if __name__ == '__main__':
    main(sys.argv)
