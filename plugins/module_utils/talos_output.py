# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What talosctl prints, read: JSON streams, YAML documents, tables, `talosctl version`, and the errors it
reports (one per node of a multierror). PRIVATE to the collection: other collections must not import it.

TalosError, the layer's error, lives here because reading talosctl's output is where the layer's errors start.
"""

import json
import re
import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.ephemeral.castle.plugins.module_utils.base import CastleError

try:
    import yaml
    HAS_YAML = True
    YAML_IMPORT_ERROR = None
except ImportError:
    HAS_YAML = False
    YAML_IMPORT_ERROR = traceback.format_exc()

# What stands in for a secret in errors and diffs.
HIDDEN = '<hidden>'
# hashicorp/go-multierror's list: a count line, then one `\t* <node>: <error>` line per node.
MULTIERROR = re.compile(r'\d+ errors? occurred:\s*$')
NODE_ERROR = re.compile(r'^\t\* (?P<node>\S+?): (?P<error>.*)$')
# `talosctl version --short`: the client's name and tag (pkg/machinery/version Short()).
SHORT_VERSION = re.compile(r'^(?P<name>\S+) (?P<tag>v\d+\.\d+\.\d+\S*)$')


class TalosError(CastleError):
    """talosctl failed, or its input or output is not what Talos takes; the message names what and why."""

    def __init__(self, message, rc=None, stdout=None, stderr=None, command=None):
        super(TalosError, self).__init__(message)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.command = command

    def details(self):
        """What fail_json carries besides the message: rc, stdout, stderr and the command line."""
        found = dict(rc=self.rc, stdout=self.stdout, stderr=self.stderr, command=self.command)
        return dict((k, v) for k, v in found.items() if v is not None)


def require_yaml():
    if not HAS_YAML:
        raise TalosError(missing_required_lib('PyYAML'))


def last_line(text):
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    return lines[-1] if lines else ''


def node_errors(text):
    """{node: error} of a multierror talosctl printed (`N error(s) occurred:` then `\t* <node>: <error>` lines,
    the nodes' errors of one call through an endpoint); {} when text holds none."""
    found = {}
    listing = False
    for line in (text or '').splitlines():
        if MULTIERROR.search(line):
            listing = True
            continue
        item = NODE_ERROR.match(line)
        if listing and item:
            found[item.group('node')] = item.group('error').strip()
        elif line.strip():
            listing = False
    return found


def failure_text(text):
    """What went wrong, in one line: each node's error of a multierror (`<node>: <error>; ...`), else the
    last line talosctl printed."""
    errors = node_errors(text)
    if errors:
        return '; '.join('{0}: {1}'.format(node, error) for node, error in errors.items())
    return last_line(text)


def parse_json_stream(text):
    """talosctl -o json prints one JSON document per resource, one after the other."""
    decoder = json.JSONDecoder()
    found, pos, text = [], 0, text or ''
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return found
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except ValueError as exc:
            raise TalosError('talosctl printed something that is not JSON: {0}'.format(exc))
        found.append(doc)


def parse_yaml_docs(text):
    require_yaml()
    try:
        return [doc for doc in yaml.safe_load_all(text or '') if doc is not None]
    except yaml.YAMLError as exc:
        raise TalosError('not valid YAML: {0}'.format(exc))


def parse_table(text):
    """talosctl's tables: a header line, then rows; columns are padded with at least two spaces."""
    lines = [line for line in (text or '').splitlines() if line.strip()]
    if not lines:
        return []
    header = re.split(r'\s{2,}', lines[0].strip())
    return [dict(zip(header, re.split(r'\s{2,}', line.strip()))) for line in lines[1:]]


def parse_version(text):
    """`talosctl version` as {'client': {...}, 'servers': [{'node': ..., 'tag': ...}, ...]}. With --short the
    client's part is one line, `Talos <tag>`; a server's part is always the long one."""
    found = dict(client={}, servers=[])
    current = None
    for raw in (text or '').splitlines():
        line = raw.strip()
        if line in ('Client:', 'Server:'):
            current = found['client'] if line == 'Client:' else None
            continue
        short = SHORT_VERSION.match(line)
        if short and current is found['client']:
            found['client'].update(name=short.group('name'), tag=short.group('tag'))
            continue
        key, sep, value = line.partition(':')
        if not sep:
            continue
        key = key.strip().lower().replace(' ', '_')
        if key == 'node':
            current = dict(node=value.strip())
            found['servers'].append(current)
        elif current is not None:
            current[key] = value.strip()
    return found
