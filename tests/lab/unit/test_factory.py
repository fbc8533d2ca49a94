"""The lab's Image Factory without HTTP: its canonical form gives image-factory's own test IDs
(siderolabs/image-factory pkg/schematic/schematic_test.go), it refuses unknown fields as yaml.v3 KnownFields does,
and its ISO names the schematic's extensions, which a stock ISO does not."""

import pytest

from castle_lab.talos import factory

PAIRS = {b'{}': '376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba',
         b'customization: {}': '376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba',
         b'customization: {"extraKernelArgs": []}': '376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba',
         b'{"customization": {"extraKernelArgs": ["noapic", "nolapic"], "systemExtensions": {}}}':
         '9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c',
         b'{"customization": {"meta": [{"key": 10, "value": "foo"}], "extraKernelArgs": [], "systemExtensions": {}}}':
         'd308a2a5ee2277bed5fbaa104fcbc8d59122abfa737df987a95b4ca763459a7f',
         b'{"overlay": {"name": "rpi_generic", "image": "siderolabs/sbc-raspberrypi"},"customization":{}}':
         'ee21ef4a5ef808a9b7484cc0dda0f25075021691c8c09a276591eedb638ea1f9',
         b'{"customization":{"secureboot": {"includeWellKnownCertificates": true}}}':
         'fa8e05f142a851d3ee568eb0a8e5841eaf6b0ebc8df9a63df16ac5ed2c04f3e6',
         b'customization:\n  systemExtensions:\n    officialExtensions:\n      - siderolabs/qemu-guest-agent\n':
         'ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515'}


@pytest.mark.parametrize('body', sorted(PAIRS))
def test_ids_are_image_factorys(body):
    assert factory.schematic_id(factory.marshal(factory.parse(body))) == PAIRS[body]


@pytest.mark.parametrize('body,message', [
    (b'customization:\n  extraKernelArg: [a]\n', 'line 2: field extraKernelArg not found in type schematic.Customization'),
    (b'overlays: {}\n', 'line 1: field overlays not found in type schematic.Schematic'),
    (b'customization:\n  systemExtensions:\n    official: [a]\n',
     'line 3: field official not found in type schematic.SystemExtensions')])
def test_unknown_fields_are_refused(body, message):
    with pytest.raises(factory.SchematicError, match=message):
        factory.parse(body)


def test_the_iso_carries_the_extensions_and_a_stock_iso_none():
    schematic = factory.parse(b'customization: {systemExtensions: {officialExtensions: [siderolabs/qemu-guest-agent]}}')
    sid = factory.schematic_id(factory.marshal(schematic))
    found = factory.read_iso(factory.iso_bytes(sid, schematic, 'v1.11.6'))
    assert found['schematic'] == sid and found['extensions'] == ['siderolabs/qemu-guest-agent']
    assert factory.read_iso(b'\x00' * 64) is None and factory.read_iso(None) is None


def test_installer_images_resolve_through_the_store(tmp_path):
    store = factory.Store(tmp_path)
    schematic = factory.parse(b'customization: {systemExtensions: {officialExtensions: [siderolabs/iscsi-tools]}}')
    sid, _text, created = store.put(schematic)
    assert created and store.put(schematic)[2] is False
    for image in ('factory.talos.dev/installer/{0}:v1.11.6', '127.0.10.6:8443/metal-installer/{0}:v1.11.6'):
        assert factory.installer_schematic(image.format(sid), store) == (sid, ['siderolabs/iscsi-tools'])
    assert factory.installer_schematic('ghcr.io/siderolabs/installer:v1.11.6', store) is None
    assert factory.installer_schematic('factory.talos.dev/installer/{0}:v1.11.6'.format('1' * 64), store) is None
