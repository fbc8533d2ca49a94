"""talos_image_factory against the lab's Image Factory, and the lab factory held to upstream's answers: the ID
the factory gives a schematic is the one computed offline, a second registration changes nothing, check mode
posts nothing, and what the factory refuses it refuses as image-factory does."""

import json
import ssl
import urllib.error
import urllib.request
import uuid

import pytest
from vm_helpers import module

pytestmark = pytest.mark.lab


def factory(env, method, path, body=None):
    """(status, body) of a request to the lab factory, verified against the lab CA."""
    context = ssl.create_default_context(cafile=env['PROXMOX_CA'])
    request = urllib.request.Request(env['CASTLE_LAB_FACTORY_URL'] + path, data=body, method=method)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def fresh_args():
    """A kernel argument no other test uses, so the schematic is new to the factory."""
    return ['castle.test={0}'.format(uuid.uuid4().hex[:12])]


def run(lab, env, check=False, diff=False, **args):
    args.setdefault('factory_url', env['CASTLE_LAB_FACTORY_URL'])
    args.setdefault('ca_path', env['PROXMOX_CA'])
    return module(lab, env, None, check=check, diff=diff, module_name='talos_image_factory', **args)


def test_registers_once_with_the_id_computed_offline(lab, env):
    args = dict(extensions=['qemu-guest-agent', 'siderolabs/iscsi-tools'], extra_kernel_args=fresh_args(),
                version='v1.11.6')
    predicted = run(lab, env, check=True, **args)
    assert predicted.rc == 0, predicted.stdout
    assert predicted.changed and predicted.result['registered'] is False
    sid = predicted.result['schematic_id']
    assert factory(env, 'GET', '/schematics/' + sid)[0] == 404  # check mode posted nothing

    first = run(lab, env, **args)
    assert first.rc == 0 and first.changed and first.result['schematic_id'] == sid
    status, body = factory(env, 'GET', '/schematics/' + sid)
    assert status == 200 and body.decode() == first.result['schematic']
    host = env['CASTLE_LAB_FACTORY_URL'].split('://', 1)[1]
    assert first.result['installer_image'] == '{0}/metal-installer/{1}:v1.11.6'.format(host, sid)
    status, iso = factory(env, 'GET', first.result['iso_url'][len(env['CASTLE_LAB_FACTORY_URL']):])
    assert status == 200 and sid.encode() in iso and b'siderolabs/qemu-guest-agent' in iso

    again = run(lab, env, **args)
    assert again.rc == 0 and again.changed is False and again.result['registered'] is True


def test_unknown_fields_are_refused_and_unknown_extensions_at_image_time(lab, env):
    status, body = factory(env, 'POST', '/schematics', b'customization:\n  systemExtension: [x]\n')
    assert status == 400 and b'field systemExtension not found in type schematic.Customization' in body
    # A schematic is not tied to a version, so a made-up extension is stored; the image for a version is refused.
    status, body = factory(env, 'POST', '/schematics', json.dumps({'customization': {'systemExtensions': {
        'officialExtensions': ['siderolabs/no-such-extension']}, 'extraKernelArgs': fresh_args()}}).encode())
    assert status == 201
    sid = json.loads(body)['id']
    status, body = factory(env, 'GET', '/image/{0}/v1.11.6/metal-amd64.iso'.format(sid))
    assert status == 400
    assert body.decode().strip() == ('official extension "siderolabs/no-such-extension" is not available for '
                                     'Talos version v1.11.6')
    status, body = factory(env, 'GET', '/image/{0}/v1.11.6/metal-amd64.iso'.format('0' * 64))
    assert status == 404 and body.decode().strip() == 'schematic ID "{0}" not found'.format('0' * 64)


def test_bad_inputs_fail_naming_them(lab, env):
    bad = run(lab, env, extensions=['Qemu Guest Agent'], version='v1.11.6')
    assert bad.rc != 0 and "invalid system extension name 'Qemu Guest Agent'" in bad.stdout
    offline = run(lab, env, extensions=['qemu-guest-agent'], version='v1.11.6', factory_url='https://127.0.0.1:9')
    assert offline.rc != 0 and 'could not be reached' in offline.stdout
