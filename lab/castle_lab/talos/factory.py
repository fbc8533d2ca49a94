"""The lab's Talos Image Factory: schematics, ISOs and installer images by schematic, over HTTPS on loopback.

As siderolabs/image-factory does:
- `POST /schematics` decodes the body as YAML (JSON too) with unknown fields refused (yaml.v3 KnownFields),
  stores the schematic under its ID, the SHA-256 of its canonical form (yaml.v3 Marshal, 4-space block style,
  fields in declaration order, empty ones left out), and answers 201 `{"id": ..., "schematic": ...}`. Posting
  a stored schematic again changes nothing. Malformed bodies answer 400 with the decoder's message.
- `GET /schematics/<id>` answers the canonical YAML, or 404 `schematic ID "<id>" not found`.
- `GET /image/<id>/<version>/<platform>-<arch>.iso` answers the ISO; an extension the version does not have
  answers 400 `official extension "<name>" is not available for Talos version <version>`, an unknown schematic
  404. Extensions are checked when an image is built, not when the schematic is posted (a schematic is not
  tied to a version).
- The registry frontend: `GET /v2/<name>/<id>/manifests/<version>` for `installer` and `<platform>-installer`.

The lab's ISO is a small document, not a bootable image: a first line naming it, then JSON with the schematic
ID, version, platform, arch and the official extensions it carries. The lab's Talos nodes read it from the ISO
a VM boots (read_iso); a stock Talos ISO has none of it, hence no extensions.
"""

import argparse
import asyncio
import hashlib
import json
import pathlib
import re

import yaml

from ..serving import serve_https

ISO_MAGIC = b'CASTLE-LAB TALOS ISO\n'
DEFAULT_EXTENSIONS = ('siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent', 'siderolabs/util-linux-tools')
VERSIONS = tuple('v1.10.{0}'.format(n) for n in range(8)) + tuple('v1.11.{0}'.format(n) for n in range(7))
# Official extensions the lab's factory has for every version above, with the version each reports.
EXTENSIONS = {
    'siderolabs/qemu-guest-agent': '10.0.2', 'siderolabs/iscsi-tools': 'v0.2.0',
    'siderolabs/util-linux-tools': '2.41.1', 'siderolabs/gvisor': '20250505.0', 'siderolabs/intel-ucode': '20250812',
    'siderolabs/amd-ucode': '20250811', 'siderolabs/drbd': '9.2.14', 'siderolabs/zfs': '2.3.3',
    'siderolabs/tailscale': '1.86.2', 'siderolabs/nut-client': '2.8.4', 'siderolabs/nvidia-container-toolkit-lts':
    '570.172.08-v1.17.8',
}
# Fields of each level of the schematic, in the order yaml.v3 writes them.
FIELDS = {
    'schematic.Schematic': ('overlay', 'customization'),
    'schematic.Customization': ('extraKernelArgs', 'meta', 'systemExtensions', 'secureboot'),
    'schematic.SystemExtensions': ('officialExtensions',),
    'schematic.SecureBootCustomization': ('includeWellKnownCertificates',),
    'schematic.Overlay': ('image', 'name'),
    'schematic.MetaValue': ('key', 'value'),
}
INSTALLER = re.compile(r'^(?:(?P<platform>[a-z][a-z0-9-]*)-)?installer(?P<secureboot>-secureboot)?$')
SCHEMATIC_ID = re.compile(r'^[0-9a-f]{64}$')


class SchematicError(Exception):
    """An invalid schematic (HTTP 400), with yaml.v3's kind of message."""


def _fields(node, kind, errors):
    """{field: value node} of a mapping node, recording yaml.v3's message for each unknown field."""
    if not isinstance(node, yaml.MappingNode):
        raise SchematicError('yaml: unmarshal errors:\n  line {0}: cannot unmarshal {1} into {2}'.format(
            node.start_mark.line + 1, node.tag.rsplit(':', 1)[-1], kind))
    found = {}
    for key, value in node.value:
        if key.value not in FIELDS[kind]:
            errors.append('line {0}: field {1} not found in type {2}'.format(key.start_mark.line + 1, key.value, kind))
        else:
            found[key.value] = value
    return found


def _strings(node):
    if isinstance(node, yaml.ScalarNode) and node.tag.endswith(':null'):
        return []
    if not isinstance(node, yaml.SequenceNode) or not all(isinstance(n, yaml.ScalarNode) for n in node.value):
        raise SchematicError('yaml: unmarshal errors:\n  line {0}: cannot unmarshal into []string'.format(
            node.start_mark.line + 1))
    return [n.value for n in node.value]


def parse(data):
    """The schematic in `data` (YAML or JSON), as a dict of its non-empty fields; SchematicError if invalid."""
    try:
        root = yaml.compose(data)
    except yaml.YAMLError as exc:
        raise SchematicError('yaml: {0}'.format(exc)) from exc
    if root is None:
        return {'customization': {}}
    errors = []
    top = _fields(root, 'schematic.Schematic', errors)
    schematic = {'customization': {}}
    if 'overlay' in top:
        overlay = _fields(top['overlay'], 'schematic.Overlay', errors)
        values = {k: overlay[k].value for k in ('image', 'name') if k in overlay and overlay[k].value}
        if values:
            schematic['overlay'] = {'image': values.get('image', ''), 'name': values.get('name', '')}
    custom = _fields(top.get('customization') or yaml.MappingNode('tag:yaml.org,2002:map', []),
                     'schematic.Customization', errors)
    out = schematic['customization']
    if 'extraKernelArgs' in custom and _strings(custom['extraKernelArgs']):
        out['extraKernelArgs'] = _strings(custom['extraKernelArgs'])
    if 'meta' in custom and isinstance(custom['meta'], yaml.SequenceNode) and custom['meta'].value:
        metas = []
        for item in custom['meta'].value:
            entry = _fields(item, 'schematic.MetaValue', errors)
            key = yaml.safe_load(yaml.serialize(entry['key'])) if 'key' in entry else 0
            if not isinstance(key, int) or not 0 <= key <= 255:
                raise SchematicError('yaml: unmarshal errors:\n  line {0}: cannot unmarshal {1!r} into uint8'.format(
                    item.start_mark.line + 1, key))
            metas.append({'key': key, 'value': entry['value'].value if 'value' in entry else ''})
        out['meta'] = metas
    if 'systemExtensions' in custom:
        extensions = _fields(custom['systemExtensions'], 'schematic.SystemExtensions', errors)
        names = _strings(extensions['officialExtensions']) if 'officialExtensions' in extensions else []
        if names:
            out['systemExtensions'] = {'officialExtensions': names}
    if 'secureboot' in custom:
        secureboot = _fields(custom['secureboot'], 'schematic.SecureBootCustomization', errors)
        if 'includeWellKnownCertificates' in secureboot and \
                yaml.safe_load(yaml.serialize(secureboot['includeWellKnownCertificates'])) is True:
            out['secureboot'] = {'includeWellKnownCertificates': True}
    if errors:
        raise SchematicError('yaml: unmarshal errors:\n  ' + '\n  '.join(errors))
    return schematic


def _scalar(value):
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    try:
        plain = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        plain = value
    if not isinstance(plain, str) or value.lower() in ('y', 'n', 'yes', 'no', 'on', 'off'):
        return json.dumps(value)
    if value[0] in '-?:,[]{}#&*!|>\'"%@`' and (value[0] not in '-?:' or len(value) == 1) or value.endswith(':') \
            or ': ' in value or ' #' in value or value != value.strip() or '\n' in value:
        return json.dumps(value) if '\n' in value or '\\' in value else "'{0}'".format(value.replace("'", "''"))
    return value


def _emit(value, indent, lines):
    pad = ' ' * indent
    for key, item in value.items():
        if isinstance(item, dict):
            if item:
                lines.append('{0}{1}:'.format(pad, key))
                _emit(item, indent + 4, lines)
            else:
                lines.append('{0}{1}: {{}}'.format(pad, key))
        elif isinstance(item, list):
            lines.append('{0}{1}:'.format(pad, key))
            for entry in item:
                if isinstance(entry, dict):
                    first = True
                    for k, v in entry.items():
                        lines.append('{0}    {1}{2}: {3}'.format(pad, '- ' if first else '  ', k, _scalar(v)))
                        first = False
                else:
                    lines.append('{0}    - {1}'.format(pad, _scalar(entry)))
        else:
            lines.append('{0}{1}: {2}'.format(pad, key, _scalar(item)))


def marshal(schematic):
    """The canonical text of a parsed schematic."""
    ordered = {}
    if schematic.get('overlay'):
        ordered['overlay'] = schematic['overlay']
    custom = schematic.get('customization') or {}
    ordered['customization'] = {k: custom[k] for k in FIELDS['schematic.Customization'] if custom.get(k)}
    lines = []
    _emit(ordered, 0, lines)
    return '\n'.join(lines) + '\n'


def schematic_id(text):
    return hashlib.sha256(text.encode()).hexdigest()


def extensions_of(schematic):
    return list(((schematic.get('customization') or {}).get('systemExtensions') or {}).get('officialExtensions') or [])


def check_extensions(schematic, version):
    """Raise SchematicError as the factory does when it builds an image with an extension the version lacks."""
    for name in extensions_of(schematic):
        if name not in EXTENSIONS:
            raise SchematicError('official extension "{0}" is not available for Talos version {1}'.format(name, version))


def iso_bytes(sid, schematic, version, platform='metal', arch='amd64'):
    body = {'schematic': sid, 'version': version, 'platform': platform, 'arch': arch,
            'extensions': extensions_of(schematic),
            'extraKernelArgs': (schematic.get('customization') or {}).get('extraKernelArgs', [])}
    return ISO_MAGIC + json.dumps(body, sort_keys=True).encode() + b'\n'


def default_schematic():
    return {'customization': {'systemExtensions': {'officialExtensions': list(DEFAULT_EXTENSIONS)}}}


def default_iso(version='v1.11.6'):
    """(file name, bytes) of the factory ISO with the default extensions the lab's Proxmox VE holds."""
    schematic = default_schematic()
    sid = schematic_id(marshal(schematic))
    return 'talos-{0}-metal-amd64-{1}.iso'.format(version, sid[:12]), iso_bytes(sid, schematic, version)


def read_iso(data):
    """What a lab ISO carries ({'schematic', 'version', 'extensions', ...}), or None for any other file."""
    if not data or not bytes(data).startswith(ISO_MAGIC):
        return None
    return json.loads(bytes(data)[len(ISO_MAGIC):].decode())


def extension_status(names, sid, version):
    """ExtensionStatus specs as Talos reports them (runtime namespace, ids 0, 1, ...): each official extension,
    then the factory's `schematic` extension whose version is the schematic ID."""
    specs = []
    for name in names:
        short = name.split('/', 1)[-1]
        specs.append({'image': '{0:03d}.{1}.sqsh'.format(len(specs), short), 'metadata': {
            'name': short, 'version': EXTENSIONS.get(name, ''), 'author': 'Sidero Labs',
            'description': 'Official Talos system extension {0}.'.format(short),
            'compatibility': {'talos': {'version': '>= {0}'.format(version)}}}})
    if sid:
        specs.append({'image': '{0:03d}.schematic.sqsh'.format(len(specs)), 'metadata': {
            'name': 'schematic', 'version': sid, 'author': 'Image Factory',
            'description': 'Image Factory schematic extension.'}})
    return specs


class Store:
    """Schematics kept as <id>.yaml under a directory (the lab's .lab/factory/schematics)."""

    def __init__(self, path):
        self.path = pathlib.Path(path)

    def put(self, schematic):
        text = marshal(schematic)
        sid = schematic_id(text)
        target = self.path / (sid + '.yaml')
        created = not target.exists()
        if created:
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = target.with_suffix('.tmp')
            tmp.write_text(text)
            tmp.replace(target)
        return sid, text, created

    def get(self, sid):
        if not SCHEMATIC_ID.match(sid or ''):
            return None
        try:
            return (self.path / (sid + '.yaml')).read_text()
        except FileNotFoundError:
            return None


def installer_schematic(image, store):
    """The schematic ID and extensions of an installer image reference `<host>/<name>/<id>:<tag>` from a factory
    (`installer`, `installer-secureboot`, `<platform>-installer`); None for any other image (no extensions)."""
    ref = str(image or '').split('@', 1)[0]
    parts = ref.split('/')
    if len(parts) != 3 or not INSTALLER.match(parts[1]):
        return None
    sid = parts[2].rsplit(':', 1)[0]
    text = store.get(sid)
    if text is None:
        return None
    return sid, extensions_of(parse(text))


def _text(status, message):
    from aiohttp import web
    return web.Response(status=status, text=message + '\n')


async def create_schematic(request):
    from aiohttp import web
    try:
        schematic = parse(await request.read())
    except SchematicError as exc:
        return _text(400, str(exc))
    sid, text, _created = request.app['store'].put(schematic)
    return web.json_response({'id': sid, 'schematic': text}, status=201)


async def get_schematic(request):
    from aiohttp import web
    sid = request.match_info['id']
    text = request.app['store'].get(sid)
    if text is None:
        return _text(404, 'schematic ID "{0}" not found'.format(sid))
    return web.Response(text=text, content_type='application/yaml')


async def get_image(request):
    from aiohttp import web
    sid, version, path = (request.match_info[k] for k in ('id', 'version', 'path'))
    text = request.app['store'].get(sid)
    if text is None:
        return _text(404, 'schematic ID "{0}" not found'.format(sid))
    if version not in VERSIONS:
        return _text(404, 'version {0} not found'.format(version))
    match = re.match(r'^([a-z][a-z0-9-]*)-(amd64|arm64)\.iso$', path)
    if not match:
        return _text(400, 'the lab factory builds ISOs only (<platform>-<arch>.iso), not {0!r}'.format(path))
    schematic = parse(text)
    try:
        check_extensions(schematic, version)
    except SchematicError as exc:
        return _text(400, str(exc))
    body = iso_bytes(sid, schematic, version, match.group(1), match.group(2))
    return web.Response(body=body, content_type='application/octet-stream',
                        headers={'Content-Disposition': 'attachment; filename="{0}"'.format(path)})


async def registry_root(_request):
    from aiohttp import web
    return web.json_response({})


async def installer_manifest(request):
    from aiohttp import web
    name, sid, tag = (request.match_info[k] for k in ('name', 'id', 'tag'))
    text = request.app['store'].get(sid)
    if text is None:
        return _text(404, 'schematic ID "{0}" not found'.format(sid))
    if not INSTALLER.match(name):
        return _text(400, 'invalid image: {0}'.format(name))
    if tag not in VERSIONS:
        return web.json_response({'errors': [{'code': 'MANIFEST_UNKNOWN', 'message': 'manifest unknown'}]},
                                 status=404)
    schematic = parse(text)
    try:
        check_extensions(schematic, tag)
    except SchematicError as exc:
        return _text(400, str(exc))
    manifest = {'schemaVersion': 2, 'mediaType': 'application/vnd.oci.image.manifest.v1+json',
                'annotations': {'dev.castle-lab.schematic': sid, 'dev.castle-lab.version': tag,
                                'dev.castle-lab.extensions': ','.join(extensions_of(schematic))}}
    return web.json_response(manifest, content_type='application/vnd.oci.image.manifest.v1+json')


def application(state):
    from aiohttp import web
    app = web.Application()
    app['store'] = Store(pathlib.Path(state) / 'schematics')
    app.router.add_post('/schematics', create_schematic)
    app.router.add_get('/schematics/{id}', get_schematic)
    app.router.add_get('/image/{id}/{version}/{path}', get_image)
    app.router.add_get('/v2/', registry_root)
    app.router.add_get('/v2/{name}/{id}/manifests/{tag}', installer_manifest)
    return app


async def serve(args):
    from aiohttp import web
    runner = web.AppRunner(application(args.state), access_log=None)
    await serve_https('factory', runner, args.host, args.port, args.cert, args.key)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for option in ('--host', '--cert', '--key', '--state'):
        parser.add_argument(option, required=True)
    parser.add_argument('--port', type=int, default=8080)
    asyncio.run(serve(parser.parse_args()))


if __name__ == '__main__':
    main()
