# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Talos Image Factory schematics, computed offline. PRIVATE to the collection: other collections must not import it.

The factory (siderolabs/image-factory, pkg/schematic) identifies a schematic by the SHA-256 of its canonical
form: the schematic marshalled by gopkg.in/yaml.v3 with its default settings (4-space indent, block style,
struct fields in declaration order, empty fields left out). The factory re-marshals whatever it is sent, so the
ID does not depend on how the client formats its YAML, only on the values and their order. This module writes
that canonical form for the fields the collection uses (system extensions and extra kernel arguments), so the
ID is known before, and without, asking the factory.
"""

import hashlib
import re

from ansible.module_utils.six.moves.urllib.parse import urlsplit

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError, Layer, option

DEFAULT_FACTORY_URL = 'https://factory.talos.dev'
OFFICIAL_PREFIX = 'siderolabs/'
GUEST_AGENT = 'siderolabs/qemu-guest-agent'
LONGHORN_EXTENSIONS = ('siderolabs/iscsi-tools', 'siderolabs/util-linux-tools')
ARCHES = ('amd64', 'arm64')
VERSION = re.compile(r'^v(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?$')
# What an extension name or a kernel argument may hold: no spaces, quotes or YAML flow characters.
TOKEN = re.compile(r'^[A-Za-z0-9_./=,:+@%~-]+$')
EXTENSION = re.compile(r'^[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*$')

# Plain scalars yaml.v3 would read back as something other than a string; it double-quotes them.
_NOT_STRING = [re.compile(p) for p in (
    r'^(?:~|null|Null|NULL)$',
    r'^(?:true|True|TRUE|false|False|FALSE)$',
    r'^(?:y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF)$',
    r'^[-+]?(?:0b[01_]+|0o?[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*)$',
    r'^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$',
    r'^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$',
    r'^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$',
    r'^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}',
)]


class FactoryError(CastleError):
    """A schematic input the collection cannot turn into a canonical schematic, or a factory answer it cannot
    use; `details` go to fail_json beside the message (the schematic the factory refused, say)."""

    def __init__(self, message, **details):
        super(FactoryError, self).__init__(message)
        self._details = details

    def details(self):
        return dict(self._details)


def extension_name(name):
    """The official extension's full name: `qemu-guest-agent` is `siderolabs/qemu-guest-agent`."""
    name = str(name).strip()
    full = name if '/' in name else OFFICIAL_PREFIX + name
    if not EXTENSION.match(full):
        raise FactoryError('invalid system extension name {0!r}: expected an official extension such as '
                           '{1}'.format(name, GUEST_AGENT))
    return full


def extension_names(names):
    """Full names, without duplicates, sorted: the same set of extensions always gives the same schematic."""
    return sorted(set(extension_name(name) for name in names or []))


def missing_extensions(names, required):
    """The required extensions that `names` lacks, in the order given."""
    present = set(extension_names(names))
    return [name for name in (extension_name(r) for r in required) if name not in present]


def schematic_document(extensions=None, extra_kernel_args=None):
    """The schematic as a dict: customization.extraKernelArgs (order kept), then systemExtensions."""
    customization = {}
    args = [str(arg) for arg in extra_kernel_args or []]
    for arg in args:
        if not TOKEN.match(arg):
            raise FactoryError('invalid extra kernel argument {0!r}: one argument per item, without spaces or '
                               'quotes'.format(arg))
    if args:
        customization['extraKernelArgs'] = args
    names = extension_names(extensions)
    if names:
        customization['systemExtensions'] = {'officialExtensions': names}
    return {'customization': customization}


def _scalar(value):
    """A string as yaml.v3 writes it: double-quoted if it would read back as another type, single-quoted if
    plain style cannot hold it, else plain."""
    if value == '' or any(p.match(value) for p in _NOT_STRING):
        return '"{0}"'.format(value)
    if (value[0] in '-?:,[]{}#&*!|>\'"%@`' and (value[0] not in '-?:' or len(value) == 1)) \
            or value.endswith(':') or ': ' in value or ' #' in value or value in ('---', '...'):
        return "'{0}'".format(value.replace("'", "''"))
    return value


def _emit(value, indent, lines):
    pad = ' ' * indent
    for key, item in value.items():
        if isinstance(item, dict):
            if not item:
                lines.append('{0}{1}: {{}}'.format(pad, key))
                continue
            lines.append('{0}{1}:'.format(pad, key))
            _emit(item, indent + 4, lines)
        elif isinstance(item, list):
            lines.append('{0}{1}:'.format(pad, key))
            lines.extend('{0}    - {1}'.format(pad, _scalar(entry)) for entry in item)
        else:
            lines.append('{0}{1}: {2}'.format(pad, key, _scalar(item)))


def canonical_yaml(document):
    """The canonical text of a schematic document (as schematic_document builds it)."""
    lines = []
    _emit({'customization': document.get('customization') or {}}, 0, lines)
    return '\n'.join(lines) + '\n'


def schematic_id(text):
    """The factory's ID of a canonical schematic text."""
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def check_version(version):
    match = VERSION.match(str(version or ''))
    if not match:
        raise FactoryError('invalid Talos version {0!r}: expected a release tag such as v1.11.6'.format(version))
    return int(match.group(1)), int(match.group(2))


def base_url(factory_url):
    url = (factory_url or DEFAULT_FACTORY_URL).rstrip('/')
    parts = urlsplit(url)
    if parts.scheme not in ('http', 'https') or not parts.netloc or parts.query or parts.fragment:
        raise FactoryError('invalid factory_url {0!r}: expected https://<host>[:<port>]'.format(factory_url))
    return url


def iso_url(factory_url, schematic, version, platform='metal', arch='amd64'):
    """GET /image/<schematic>/<version>/<platform>-<arch>.iso"""
    check_version(version)
    return '{0}/image/{1}/{2}/{3}-{4}.iso'.format(base_url(factory_url), schematic, version, platform, arch)


def iso_filename(schematic, version, platform='metal', arch='amd64'):
    """A storage file name that changes with the schematic and the version."""
    return 'talos-{0}-{1}-{2}-{3}.iso'.format(version, platform, arch, schematic[:12])


def installer_image(factory_url, schematic, version, platform='metal'):
    """The factory's installer image for the schematic, on the factory's own host (its registry frontend).

    From Talos v1.10 the factory names installers per platform (`<platform>-installer`), as the Talos v1.10 and
    v1.11 boot-assets guides do; earlier versions use `installer`, which the factory still serves as metal."""
    major, minor = check_version(version)
    host = urlsplit(base_url(factory_url)).netloc
    name = '{0}-installer'.format(platform) if (major, minor) >= (1, 10) else 'installer'
    return '{0}/{1}/{2}:{3}'.format(host, name, schematic, version)


def describe(extensions=None, extra_kernel_args=None, version=None, factory_url=None, platform='metal',
             arch='amd64'):
    """Everything known offline about a schematic for a version: text, ID, ISO URL and name, installer."""
    if arch not in ARCHES:
        raise FactoryError('invalid arch {0!r}: expected one of {1}'.format(arch, ', '.join(ARCHES)))
    if not re.match(r'^[a-z][a-z0-9-]*$', str(platform or '')):
        raise FactoryError('invalid platform {0!r}: expected a Talos platform such as metal'.format(platform))
    document = schematic_document(extensions, extra_kernel_args)
    text = canonical_yaml(document)
    sid = schematic_id(text)
    result = {'schematic': text, 'schematic_id': sid,
              'extensions': document['customization'].get('systemExtensions', {}).get('officialExtensions', []),
              'factory_url': base_url(factory_url)}
    if version:
        result.update(iso_url=iso_url(factory_url, sid, version, platform, arch),
                      iso_filename=iso_filename(sid, version, platform, arch),
                      installer_image=installer_image(factory_url, sid, version, platform))
    return result


# How a module reaches an Image Factory (talos_image_factory's own options come on top).
FACTORY = Layer(dict(
    factory_url=option('str', DEFAULT_FACTORY_URL),
    validate_certs=option('bool', True),
    ca_path=option('path'),
    timeout=option('int', 30),
))
