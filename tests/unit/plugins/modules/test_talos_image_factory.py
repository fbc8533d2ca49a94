"""talos_image_factory without a factory: the schematic and its ID computed offline, registered only when the
factory does not know it, never in check mode; the factory's refusals named."""

import importlib
import io
import json

from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError

from ansible_collections.ephemeral.castle.plugins.module_utils import talos_factory

ARGS = dict(extensions=['qemu-guest-agent'], version='v1.11.6', factory_url='https://factory.lab:8443')
FOUND = talos_factory.describe(['qemu-guest-agent'], [], 'v1.11.6', 'https://factory.lab:8443')


class Response(object):
    def __init__(self, status, body):
        self.status, self.body = status, body

    def getcode(self):
        return self.status

    def read(self):
        return self.body.encode('utf-8')


class Factory(object):
    """Answers open_url like an Image Factory knowing `known` schematic IDs; records (method, url, data)."""

    def __init__(self, monkeypatch, known=(), post=None, down=False):
        self.known, self.post, self.down = set(known), post, down
        self.requests = []
        module = importlib.import_module('ansible_collections.ephemeral.castle.plugins.modules.talos_image_factory')
        monkeypatch.setattr(module, 'open_url', self)

    def __call__(self, url, method='GET', data=None, **options):
        self.requests.append((method, url, data))
        if self.down:
            raise URLError('connection refused')
        if method == 'POST':
            status, body = self.post or (201, json.dumps({'id': FOUND['schematic_id']}))
            if status >= 400:
                raise HTTPError(url, status, 'error', {}, io.BytesIO(body.encode('utf-8')))
            return Response(status, body)
        if url.rsplit('/', 1)[-1] in self.known:
            return Response(200, FOUND['schematic'])
        raise HTTPError(url, 404, 'not found', {}, io.BytesIO(b'{"error": "not found"}'))


def test_an_unknown_schematic_is_registered(run_module, monkeypatch):
    factory = Factory(monkeypatch)
    result = run_module('talos_image_factory', diff=True, **ARGS)
    assert result.changed and result['registered'] and result['schematic_id'] == FOUND['schematic_id']
    assert result['installer_image'] == 'factory.lab:8443/metal-installer/{0}:v1.11.6'.format(FOUND['schematic_id'])
    assert [r[:2] for r in factory.requests] == [
        ('GET', 'https://factory.lab:8443/schematics/' + FOUND['schematic_id']),
        ('POST', 'https://factory.lab:8443/schematics')]
    assert factory.requests[1][2] == FOUND['schematic'].encode('utf-8')
    assert result['diff']['before'] == '' and result['diff']['after'] == FOUND['schematic']


def test_a_known_schematic_is_left_alone(run_module, monkeypatch):
    factory = Factory(monkeypatch, known=[FOUND['schematic_id']])
    result = run_module('talos_image_factory', **ARGS)
    assert not result.changed and result['registered'] and len(factory.requests) == 1


def test_check_mode_posts_nothing(run_module, monkeypatch):
    factory = Factory(monkeypatch)
    result = run_module('talos_image_factory', check_mode=True, **ARGS)
    assert result.changed and not result['registered'] and [r[0] for r in factory.requests] == ['GET']


def test_register_false_asks_no_factory(run_module, monkeypatch):
    factory = Factory(monkeypatch, down=True)
    result = run_module('talos_image_factory', register=False, **ARGS)
    assert not result.changed and not result['registered'] and not factory.requests


def test_the_factory_refusing_or_disagreeing_is_named(run_module, monkeypatch):
    Factory(monkeypatch, post=(400, 'invalid schematic'))
    result = run_module('talos_image_factory', **ARGS)
    assert result.failed and result.msg == ('the Image Factory at https://factory.lab:8443 refused the schematic '
                                            '(400): invalid schematic')
    assert result['schematic'] == FOUND['schematic']
    Factory(monkeypatch, post=(201, json.dumps({'id': 'f' * 64})))
    result = run_module('talos_image_factory', **ARGS)
    assert result.failed and 'gave the schematic the ID ' + 'f' * 64 in result.msg


def test_an_unreachable_factory_is_named(run_module, monkeypatch):
    Factory(monkeypatch, down=True)
    result = run_module('talos_image_factory', **ARGS)
    assert result.failed and result.msg == ('the Image Factory at https://factory.lab:8443 could not be reached (GET '
                                            'https://factory.lab:8443/schematics/{0}): connection refused'.format(
                                                FOUND['schematic_id']))


def test_bad_input_is_named(run_module, monkeypatch):
    factory = Factory(monkeypatch)
    result = run_module('talos_image_factory', **dict(ARGS, version='1.11'))
    assert result.failed and result.msg == "invalid Talos version '1.11': expected a release tag such as v1.11.6"
    result = run_module('talos_image_factory', **dict(ARGS, extensions=['Bad Name']))
    assert result.failed and result.msg.startswith("invalid system extension name 'Bad Name'")
    assert not factory.requests
