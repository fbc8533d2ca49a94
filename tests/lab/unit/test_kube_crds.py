"""The Flux and External Secrets CRDs bundled with the lab, and custom resources checked against them."""

import copy
import json
import pathlib
import subprocess
import sys

import jsonschema
import pytest

from castle_lab.kube import upstream_crds

REPO = pathlib.Path(__file__).resolve().parents[3]
SCRIPT = REPO / 'lab' / 'tools' / 'derive_crds.py'
BUNDLED = REPO / 'lab' / 'castle_lab' / 'kube' / 'crds'
REFERENCE = REPO.parent / 'shared' / 'reference'
DROP = object()
# Groups of the CRDs built for the charts the lab installs (see test_kube_helm_charts.py).
CHART_GROUPS = ('.metallb.io', '.longhorn.io')

META = {'name': 'castle', 'namespace': 'flux-system'}
SOURCE_REF = {'kind': 'GitRepository', 'name': 'castle'}
EXAMPLES = {
    'gitrepositories.source.toolkit.fluxcd.io': {
        'apiVersion': 'source.toolkit.fluxcd.io/v1', 'kind': 'GitRepository', 'metadata': META,
        'spec': {'url': 'https://127.0.10.3/gitops.git', 'interval': '1m', 'ref': {'branch': 'main'}}},
    'kustomizations.kustomize.toolkit.fluxcd.io': {
        'apiVersion': 'kustomize.toolkit.fluxcd.io/v1', 'kind': 'Kustomization', 'metadata': META,
        'spec': {'interval': '10m', 'path': './clusters/lab', 'prune': True, 'sourceRef': SOURCE_REF}},
    'helmreleases.helm.toolkit.fluxcd.io': {
        'apiVersion': 'helm.toolkit.fluxcd.io/v2', 'kind': 'HelmRelease', 'metadata': META,
        'spec': {'interval': '30m', 'chart': {'spec': {
            'chart': 'external-secrets', 'version': '2.9.0',
            'sourceRef': {'kind': 'HelmRepository', 'name': 'external-secrets'}}},
            'values': {'installCRDs': True, 'replicaCount': 1}}},
    'helmrepositories.source.toolkit.fluxcd.io': {
        'apiVersion': 'source.toolkit.fluxcd.io/v1', 'kind': 'HelmRepository', 'metadata': META,
        'spec': {'url': 'https://charts.external-secrets.io', 'interval': '1h'}},
    'ocirepositories.source.toolkit.fluxcd.io': {
        'apiVersion': 'source.toolkit.fluxcd.io/v1', 'kind': 'OCIRepository', 'metadata': META,
        'spec': {'url': 'oci://ghcr.io/stefanprodan/manifests/podinfo', 'interval': '5m', 'ref': {'tag': 'latest'}}},
    'helmcharts.source.toolkit.fluxcd.io': {
        'apiVersion': 'source.toolkit.fluxcd.io/v1', 'kind': 'HelmChart', 'metadata': META,
        'spec': {'chart': 'podinfo', 'interval': '5m', 'sourceRef': {'kind': 'HelmRepository', 'name': 'podinfo'}}},
    'externalsecrets.external-secrets.io': {
        'apiVersion': 'external-secrets.io/v1', 'kind': 'ExternalSecret', 'metadata': META,
        'spec': {'refreshInterval': '1h', 'secretStoreRef': {'kind': 'ClusterSecretStore', 'name': 'vault'},
                 'target': {'name': 'castle', 'creationPolicy': 'Owner'},
                 'data': [{'secretKey': 'token', 'remoteRef': {'key': 'castle/openclaw', 'property': 'token'}}]}},
    'clustersecretstores.external-secrets.io': {
        'apiVersion': 'external-secrets.io/v1', 'kind': 'ClusterSecretStore', 'metadata': {'name': 'vault'},
        'spec': {'provider': {'vault': {
            'server': 'https://127.0.10.1:8200', 'path': 'kv', 'version': 'v2',
            'auth': {'tokenSecretRef': {'name': 'vault-token', 'namespace': 'external-secrets', 'key': 'token'}}}}}},
    'secretstores.external-secrets.io': {
        'apiVersion': 'external-secrets.io/v1', 'kind': 'SecretStore', 'metadata': META,
        'spec': {'provider': {'vault': {'server': 'https://127.0.10.1:8200', 'path': 'kv'}}}},
    'clusterexternalsecrets.external-secrets.io': {
        'apiVersion': 'external-secrets.io/v1', 'kind': 'ClusterExternalSecret', 'metadata': {'name': 'castle'},
        'spec': {'namespaceSelectors': [{'matchLabels': {'castle/secrets': 'true'}}],
                 'externalSecretSpec': {'secretStoreRef': {'kind': 'ClusterSecretStore', 'name': 'vault'},
                                        'data': [{'secretKey': 'token', 'remoteRef': {'key': 'castle/openclaw'}}]}}},
}

# (CRD, dotted path to change, new value or DROP, field path the error names, failing keyword)
INVALID = [
    ('gitrepositories.source.toolkit.fluxcd.io', 'spec.url', DROP, 'spec.url', 'required'),
    ('gitrepositories.source.toolkit.fluxcd.io', 'spec.interval', '1 minute', 'spec.interval', 'pattern'),
    ('gitrepositories.source.toolkit.fluxcd.io', 'spec.ref', 'main', 'spec.ref', 'type'),
    # Flux clones over HTTP(S) or SSH only: the git daemon's git:// address is refused.
    ('gitrepositories.source.toolkit.fluxcd.io', 'spec.url', 'git://127.0.10.3:9418/gitops.git', 'spec.url',
     'pattern'),
    ('kustomizations.kustomize.toolkit.fluxcd.io', 'spec.prune', DROP, 'spec.prune', 'required'),
    ('kustomizations.kustomize.toolkit.fluxcd.io', 'spec.sourceRef.kind', 'GitRepo', 'spec.sourceRef.kind', 'enum'),
    ('kustomizations.kustomize.toolkit.fluxcd.io', 'spec.prune', 'yes', 'spec.prune', 'type'),
    ('helmreleases.helm.toolkit.fluxcd.io', 'spec.chart.spec.sourceRef.name', DROP,
     'spec.chart.spec.sourceRef.name', 'required'),
    ('helmreleases.helm.toolkit.fluxcd.io', 'spec.install', {'crds': 'Always'}, 'spec.install.crds', 'enum'),
    ('helmreleases.helm.toolkit.fluxcd.io', 'spec.suspend', 'no', 'spec.suspend', 'type'),
    ('helmrepositories.source.toolkit.fluxcd.io', 'spec.url', DROP, 'spec.url', 'required'),
    ('helmrepositories.source.toolkit.fluxcd.io', 'spec.type', 'git', 'spec.type', 'enum'),
    ('helmrepositories.source.toolkit.fluxcd.io', 'spec.url', ['https://charts.example'], 'spec.url', 'type'),
    ('ocirepositories.source.toolkit.fluxcd.io', 'spec.interval', DROP, 'spec.interval', 'required'),
    ('ocirepositories.source.toolkit.fluxcd.io', 'spec.provider', 'docker', 'spec.provider', 'enum'),
    ('ocirepositories.source.toolkit.fluxcd.io', 'spec.ref.tag', 1, 'spec.ref.tag', 'type'),
    ('helmcharts.source.toolkit.fluxcd.io', 'spec.chart', DROP, 'spec.chart', 'required'),
    ('helmcharts.source.toolkit.fluxcd.io', 'spec.sourceRef.kind', 'OCIRepository', 'spec.sourceRef.kind', 'enum'),
    ('helmcharts.source.toolkit.fluxcd.io', 'spec.valuesFiles', 'values.yaml', 'spec.valuesFiles', 'type'),
    ('externalsecrets.external-secrets.io', 'spec.data.0.remoteRef.key', DROP, 'spec.data[0].remoteRef.key',
     'required'),
    ('externalsecrets.external-secrets.io', 'spec.secretStoreRef.kind', 'Store', 'spec.secretStoreRef.kind', 'enum'),
    ('externalsecrets.external-secrets.io', 'spec.data', {'token': 'castle/openclaw'}, 'spec.data', 'type'),
    ('clustersecretstores.external-secrets.io', 'spec.provider.vault.server', DROP, 'spec.provider.vault.server',
     'required'),
    ('clustersecretstores.external-secrets.io', 'spec.provider.vault.version', 'v3', 'spec.provider.vault.version',
     'enum'),
    ('clustersecretstores.external-secrets.io', 'spec.provider.vault.path', 42, 'spec.provider.vault.path', 'type'),
    ('secretstores.external-secrets.io', 'spec.provider', DROP, 'spec.provider', 'required'),
    ('secretstores.external-secrets.io', 'spec.provider.vault.version', 'v0', 'spec.provider.vault.version', 'enum'),
    ('secretstores.external-secrets.io', 'spec.provider.vault.readYourWrites', 'true',
     'spec.provider.vault.readYourWrites', 'type'),
    ('clusterexternalsecrets.external-secrets.io', 'spec.externalSecretSpec', DROP, 'spec.externalSecretSpec',
     'required'),
    ('clusterexternalsecrets.external-secrets.io', 'spec.externalSecretSpec.refreshPolicy', 'Always',
     'spec.externalSecretSpec.refreshPolicy', 'enum'),
    ('clusterexternalsecrets.external-secrets.io', 'spec.namespaces', 'default', 'spec.namespaces', 'type'),
]


def walk(node):
    """Every mapping in a JSON document."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def field_path(parts):
    """A Kubernetes field path (spec.data[0].remoteRef) from jsonschema's path."""
    text = ''
    for part in parts:
        text += '[{0}]'.format(part) if isinstance(part, int) else ('.' if text else '') + part
    return text


def field_errors(crd, obj, strict=False):
    """{(field path, keyword)} of what the served storage version's schema rejects in obj."""
    schema = upstream_crds.json_schema(upstream_crds.served_version(crd)['schema']['openAPIV3Schema'], strict=strict)
    errors = set()
    for error in jsonschema.Draft4Validator(schema).iter_errors(obj):
        path = list(error.absolute_path)
        if error.validator == 'required':
            # One error per missing field; the field itself is the path the API server names.
            errors.update((field_path(path + [name]), 'required') for name in error.validator_value
                          if name not in error.instance)
        else:
            errors.add((field_path(path), error.validator))
    return errors


def changed(obj, dotted, value):
    obj = copy.deepcopy(obj)
    *parents, last = [int(p) if p.isdigit() else p for p in dotted.split('.')]
    node = obj
    for part in parents:
        node = node[part]
    if value is DROP:
        del node[last]
    else:
        node[last] = value
    return obj


def test_every_bundled_crd_is_a_v1_crd_with_one_storage_version():
    crds = upstream_crds.bundled_crds()
    upstream = [name for name in upstream_crds.bundled_crd_names() if not name.endswith(CHART_GROUPS)]
    assert sorted(crd['metadata']['name'] for crd in crds) == upstream_crds.bundled_crd_names()
    assert upstream == sorted(EXAMPLES)
    for crd in crds:
        assert crd['apiVersion'] == 'apiextensions.k8s.io/v1'
        assert crd['kind'] == 'CustomResourceDefinition'
        spec = crd['spec']
        assert crd['metadata']['name'] == '{0}.{1}'.format(spec['names']['plural'], spec['group'])
        assert spec['scope'] in ('Namespaced', 'Cluster')
        assert {'kind', 'plural', 'singular', 'listKind'} <= set(spec['names'])
        versions = spec['versions']
        assert any(v['served'] for v in versions)
        assert [v['storage'] for v in versions].count(True) == 1
        for version in versions:
            assert {'name', 'served', 'storage', 'subresources', 'additionalPrinterColumns'} <= set(version)
            assert version['schema']['openAPIV3Schema']['type'] == 'object'


def test_bundled_crds_have_no_descriptions_but_keep_their_structure():
    keys = set()
    for crd in upstream_crds.bundled_crds():
        for node in walk(crd):
            assert 'description' not in node, crd['metadata']['name']
            keys.update(node)
    assert {'x-kubernetes-validations', 'x-kubernetes-int-or-string', 'x-kubernetes-list-type',
            'x-kubernetes-map-type', 'x-kubernetes-preserve-unknown-fields', 'nullable', 'anyOf', 'enum',
            'pattern', 'default', 'required', 'minimum', 'maxLength', 'format'} <= keys


def test_an_unknown_crd_is_a_key_error_and_each_call_returns_a_fresh_copy():
    with pytest.raises(KeyError):
        upstream_crds.bundled_crd('widgets.example.com')
    with pytest.raises(KeyError):
        upstream_crds.bundled_crd('../crds/SOURCES')
    name = 'gitrepositories.source.toolkit.fluxcd.io'
    upstream_crds.bundled_crd(name)['spec']['group'] = 'changed'
    assert upstream_crds.bundled_crd(name)['spec']['group'] == 'source.toolkit.fluxcd.io'


def test_unserved_versions_are_refused():
    crd = upstream_crds.bundled_crd('externalsecrets.external-secrets.io')
    assert upstream_crds.served_version(crd)['name'] == 'v1'
    with pytest.raises(KeyError, match='does not serve v1beta1'):
        upstream_crds.served_version(crd, 'v1beta1')
    with pytest.raises(KeyError, match='no version'):
        upstream_crds.served_version(crd, 'v2')


@pytest.mark.parametrize('name', sorted(EXAMPLES))
def test_served_schemas_are_json_schemas(name):
    for version in upstream_crds.bundled_crd(name)['spec']['versions']:
        jsonschema.Draft4Validator.check_schema(upstream_crds.json_schema(version['schema']['openAPIV3Schema']))


@pytest.mark.parametrize('name', sorted(EXAMPLES))
def test_a_minimal_custom_resource_is_valid(name):
    crd = upstream_crds.bundled_crd(name)
    example = EXAMPLES[name]
    assert example['kind'] == crd['spec']['names']['kind']
    assert example['apiVersion'] == '{0}/{1}'.format(crd['spec']['group'], upstream_crds.served_version(crd)['name'])
    assert not field_errors(crd, example)
    assert not field_errors(crd, example, strict=True)


@pytest.mark.parametrize('name, dotted, value, path, keyword', INVALID,
                         ids=['{0}-{1}-{2}'.format(row[0].split('.')[0], row[3], row[4]) for row in INVALID])
def test_an_invalid_custom_resource_is_rejected_naming_the_field(name, dotted, value, path, keyword):
    errors = field_errors(upstream_crds.bundled_crd(name), changed(EXAMPLES[name], dotted, value))
    assert (path, keyword) in errors


def test_every_kind_has_a_missing_field_a_wrong_enum_and_a_wrong_type():
    kinds = {}
    for name, keyword in ((row[0], row[4]) for row in INVALID):
        kinds.setdefault(name, set()).add(keyword)
    assert set(kinds) == set(EXAMPLES)
    assert all({'required', 'type'} <= keywords and keywords & {'enum', 'pattern'} for keywords in kinds.values())


def test_int_or_string_and_nullable_fields():
    store = EXAMPLES['clustersecretstores.external-secrets.io']
    crd = upstream_crds.bundled_crd('clustersecretstores.external-secrets.io')
    for interval in (300, '5m'):
        assert not field_errors(crd, changed(store, 'spec.refreshInterval', interval))
    assert field_errors(crd, changed(store, 'spec.refreshInterval', 1.5)) == {('spec.refreshInterval', 'anyOf')}
    assert field_errors(crd, changed(store, 'spec.refreshInterval', True)) == {('spec.refreshInterval', 'anyOf')}
    secret = dict(EXAMPLES['externalsecrets.external-secrets.io'], status={'refreshTime': None})
    crd = upstream_crds.bundled_crd('externalsecrets.external-secrets.io')
    assert not field_errors(crd, secret)
    assert field_errors(crd, changed(secret, 'status.refreshTime', 0)) == {('status.refreshTime', 'type')}


def test_json_schema_conversion():
    schema = {'type': 'object', 'properties': {
        'port': {'x-kubernetes-int-or-string': True},
        'mode': {'type': 'string', 'enum': ['a', 'b'], 'nullable': True},
        'extra': {'type': 'object', 'x-kubernetes-preserve-unknown-fields': True, 'properties': {'a': {}}},
        'labels': {'type': 'object', 'additionalProperties': {'type': 'string'}}}}
    original = copy.deepcopy(schema)
    converted = upstream_crds.json_schema(schema)
    assert schema == original
    assert converted['properties']['port']['anyOf'] == [{'type': 'integer'}, {'type': 'string'}]
    assert converted['properties']['mode']['type'] == ['string', 'null']
    assert converted['properties']['mode']['enum'] == ['a', 'b', None]
    assert 'additionalProperties' not in converted
    strict = upstream_crds.json_schema(schema, strict=True)
    assert strict['additionalProperties'] is False
    assert 'additionalProperties' not in strict['properties']['extra']
    assert strict['properties']['labels']['additionalProperties'] == {'type': 'string'}


def test_strict_validation_rejects_unknown_fields():
    crd = upstream_crds.bundled_crd('gitrepositories.source.toolkit.fluxcd.io')
    typo = changed(EXAMPLES['gitrepositories.source.toolkit.fluxcd.io'], 'spec.intervall', '1m')
    assert not field_errors(crd, typo)
    assert field_errors(crd, typo, strict=True) == {('spec', 'additionalProperties')}
    release = changed(EXAMPLES['helmreleases.helm.toolkit.fluxcd.io'], 'spec.values.anything', {'goes': [1]})
    assert not field_errors(upstream_crds.bundled_crd('helmreleases.helm.toolkit.fluxcd.io'), release, strict=True)


def test_cel_validations_are_kept_for_the_emulator():
    spec = upstream_crds.served_version(upstream_crds.bundled_crd('helmreleases.helm.toolkit.fluxcd.io'))
    rules = spec['schema']['openAPIV3Schema']['properties']['spec']['x-kubernetes-validations']
    assert {'message': 'either chart or chartRef must be set',
            'rule': '(has(self.chart) && !has(self.chartRef)) || (!has(self.chart) && has(self.chartRef))'} in rules


def derive(*args):
    return subprocess.run([sys.executable, str(SCRIPT)] + list(args), capture_output=True, text=True, check=False)


def fake_reference(root, schema_extra=None):
    """A reference tree with one tiny CRD per group, listed in a SOURCES.md as the shared one is."""
    rows = []
    for group, repo, commit in (('flux', 'fluxcd/source-controller', 'a' * 40),
                                ('external-secrets', 'external-secrets/external-secrets', 'b' * 40)):
        (root / group).mkdir(parents=True)
        name = 'widgets.{0}.example.com'.format(group)
        schema = {'type': 'object', 'description': 'A widget.', 'properties': {'spec': dict({
            'type': 'object', 'description': 'Its spec.', 'required': ['size'],
            'properties': {'size': {'type': 'integer', 'minimum': 1, 'example': 3, 'description': 'How big.'},
                           'description': {'type': 'string', 'description': 'A field named description.'}}},
            **(schema_extra or {}))}}
        crd = {'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
               'metadata': {'name': name},
               'spec': {'group': group + '.example.com', 'scope': 'Namespaced',
                        'names': {'kind': 'Widget', 'plural': 'widgets', 'singular': 'widget',
                                  'listKind': 'WidgetList'},
                        'versions': [{'name': 'v1', 'served': True, 'storage': True, 'subresources': {'status': {}},
                                      'additionalPrinterColumns': [{'name': 'Size', 'type': 'integer',
                                                                    'jsonPath': '.spec.size', 'description': 'size'}],
                                      'schema': {'openAPIV3Schema': schema}}]}}
        # JSON is YAML: the script reads it with a YAML loader.
        (root / group / 'widgets.yaml').write_text(json.dumps(crd))
        rows.append('| {0}/widgets.yaml (1 KB) | {1} | config/widgets.yaml | tag v1.2.3, commit {2} | Apache-2.0 | x |'
                    .format(group, repo, commit))
        rows.append('| {0}/other.yaml | {1} | config/other.yaml | v1.2.3, {2}… | Apache-2.0 | x |'
                    .format(group, repo, commit[:8]))
    (root / 'SOURCES.md').write_text('| File | Repo | Path | Commit | License | Purpose |\n| --- |\n'
                                     + '\n'.join(rows) + '\n')


def test_the_script_drops_documentation_and_keeps_structure(tmp_path):
    fake_reference(tmp_path / 'ref')
    result = derive('--reference', str(tmp_path / 'ref'), '--out', str(tmp_path / 'out'))
    assert result.returncode == 0, result.stderr
    crd = json.loads((tmp_path / 'out' / 'widgets.flux.example.com.json').read_text())
    version = crd['spec']['versions'][0]
    assert version['additionalPrinterColumns'] == [{'name': 'Size', 'type': 'integer', 'jsonPath': '.spec.size'}]
    assert version['schema']['openAPIV3Schema'] == {'type': 'object', 'properties': {'spec': {
        'type': 'object', 'required': ['size'],
        'properties': {'size': {'type': 'integer', 'minimum': 1}, 'description': {'type': 'string'}}}}}
    sources = (tmp_path / 'out' / 'SOURCES.md').read_text()
    assert ('| widgets.flux.example.com.json | fluxcd/source-controller | config/widgets.yaml | v1.2.3 | {0} | '
            'Apache-2.0 |'.format('a' * 40)) in sources
    assert 'derived by lab/tools/derive_crds.py: descriptions dropped, structure kept' in sources


def test_the_script_stops_at_what_it_does_not_know(tmp_path):
    fake_reference(tmp_path / 'ref', {'x-castle-unknown': True})
    result = derive('--reference', str(tmp_path / 'ref'), '--out', str(tmp_path / 'out'))
    assert result.returncode == 1
    assert 'unknown schema keywords' in result.stderr and 'x-castle-unknown' in result.stderr
    assert not (tmp_path / 'out').exists()
    result = derive('--reference', str(tmp_path / 'nowhere'), '--out', str(tmp_path / 'out'))
    assert result.returncode == 1 and 'derive_crds:' in result.stderr


@pytest.mark.skipif(not REFERENCE.is_dir(), reason='the shared reference data ({0}) is not here'.format(REFERENCE))
def test_the_script_reproduces_the_bundled_files(tmp_path):
    result = derive('--out', str(tmp_path))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in BUNDLED.iterdir())
    for name in written:
        assert (tmp_path / name).read_bytes() == (BUNDLED / name).read_bytes(), name
