# -*- coding: utf-8 -*-
# Copyright: ephemeral.castle contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Machine configs and kubeconfigs as data: loaded, dumped, digested, shown with their secrets hidden.
PRIVATE to the collection: other collections must not import it."""

import copy
import hashlib
import json
import re

from ansible_collections.ephemeral.castle.plugins.module_utils.talos_output import (
    HIDDEN, TalosError, parse_yaml_docs, require_yaml)

try:
    import yaml
except ImportError:
    pass  # require_yaml() names the missing library

# Fields whose values are keys, certificates or tokens; diffs show a digest instead.
SECRET_FIELD = re.compile(r'^(key|crt|token|secret|id|bootstraptoken)$|(Secret|Token)$')


def load_config(text):
    """Machine config text (one or more YAML documents) as a list of dicts."""
    docs = parse_yaml_docs(text)
    for doc in docs:
        if not isinstance(doc, dict):
            raise TalosError('a machine config document must be a mapping, not {0}'.format(type(doc).__name__))
    return docs


def dump_config(docs):
    require_yaml()
    return '---\n'.join(yaml.safe_dump(doc, default_flow_style=False, sort_keys=False) for doc in docs)


def digest(text):
    return hashlib.sha256(text.encode('utf-8')).hexdigest()


def redacted(value, field=''):
    """A copy safe to show: keys, certificates and tokens become a marker with a short digest."""
    if isinstance(value, dict):
        return dict((k, redacted(v, k)) for k, v in value.items())
    if isinstance(value, list):
        return [redacted(v, field) for v in value]
    if isinstance(value, str) and SECRET_FIELD.search(field) and value:
        return '{0} {1}'.format(HIDDEN, digest(field + value)[:8])
    return value


def kubeconfig_identity(text):
    """What tells two kubeconfigs of one cluster apart, without the client certificate talosctl makes
    anew on every call: each cluster's server and CA, and the context names."""
    docs = parse_yaml_docs(text)
    config = docs[0] if docs and isinstance(docs[0], dict) else {}
    clusters = sorted((c.get('name'), (c.get('cluster') or {}).get('server'),
                       (c.get('cluster') or {}).get('certificate-authority-data'))
                      for c in config.get('clusters') or [])
    contexts = sorted(c.get('name') for c in config.get('contexts') or [])
    return dict(clusters=clusters, contexts=contexts)


def doc_identity(doc):
    """(apiVersion, kind, name) of a document; the v1alpha1 document has neither apiVersion nor kind."""
    return (doc.get('apiVersion') or '', doc.get('kind') or 'v1alpha1', doc.get('name') or '')


def comparable(docs):
    """Documents in a stable order, for comparing a rendered config with a running one."""
    return sorted((copy.deepcopy(d) for d in docs or []), key=lambda d: json.dumps(doc_identity(d)))


def config_diff(before, after):
    """An Ansible diff of two configs (lists of documents, or None), keys and tokens redacted."""
    def text(docs):
        return dump_config(redacted(comparable(docs))) if docs else ''
    return dict(before=text(before), after=text(after))
