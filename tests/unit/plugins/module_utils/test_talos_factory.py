"""Talos Image Factory schematics computed offline: canonical text, ID, URLs, installer image.

The (schematic, ID) pairs come from upstream: siderolabs/image-factory pkg/schematic/schematic_test.go (TestID,
TestUnmarshalID), its README (the default schematic), the Talos v1.11 boot-assets guide (bare-metal and AWS
examples, IDs the factory answered) and the Talos docs' Proxmox ID for qemu-guest-agent alone."""

import pytest

from ansible_collections.ephemeral.castle.plugins.module_utils import talos_factory as tf

UPSTREAM = [
    # image-factory README: the default schematic (no customization); schematic_test.go "empty".
    ([], [], '376567988ad370138ad8b2698212367b8edcb69b5fd68c80be1f2ec7d603b4ba'),
    # schematic_test.go "config1": extraKernelArgs noapic, nolapic.
    ([], ['noapic', 'nolapic'], '9cba8e32753f91a16c1837ab8abf356af021706ef284aef07380780177d9a06c'),
    # Talos v1.11 boot-assets guide, bare metal: net.ifnames=0 + gvisor + intel-ucode.
    (['siderolabs/gvisor', 'siderolabs/intel-ucode'], ['net.ifnames=0'],
     'b8e8fbbe1b520989e6c52c8dc8303070cb42095997e76e812fa8892393e1d176'),
    # Talos v1.11 boot-assets guide, AWS: gvisor alone.
    (['siderolabs/gvisor'], [], 'd9ff89777e246792e7642abd3220a616afb4e49822382e4213a2e528ab826fe5'),
    # The qemu-guest-agent schematic of the Talos Proxmox guide and the factory UI.
    (['siderolabs/qemu-guest-agent'], [], 'ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515'),
]


@pytest.mark.parametrize('extensions,args,expected', UPSTREAM)
def test_schematic_id_matches_the_factory(extensions, args, expected):
    text = tf.canonical_yaml(tf.schematic_document(extensions, args))
    assert tf.schematic_id(text) == expected


def test_canonical_text_is_yaml_v3_block_style():
    text = tf.canonical_yaml(tf.schematic_document(['iscsi-tools', 'siderolabs/qemu-guest-agent'], ['net.ifnames=0']))
    assert text == ('customization:\n'
                    '    extraKernelArgs:\n'
                    '        - net.ifnames=0\n'
                    '    systemExtensions:\n'
                    '        officialExtensions:\n'
                    '            - siderolabs/iscsi-tools\n'
                    '            - siderolabs/qemu-guest-agent\n')


def test_the_same_set_of_extensions_gives_the_same_id():
    one = tf.describe(['util-linux-tools', 'qemu-guest-agent', 'iscsi-tools'])
    two = tf.describe(['siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent', 'siderolabs/util-linux-tools',
                       'iscsi-tools'])
    assert one['schematic_id'] == two['schematic_id']
    assert one['extensions'] == ['siderolabs/iscsi-tools', 'siderolabs/qemu-guest-agent',
                                 'siderolabs/util-linux-tools']


def test_kernel_argument_order_matters():
    assert tf.describe([], ['a=1', 'b=2'])['schematic_id'] != tf.describe([], ['b=2', 'a=1'])['schematic_id']


@pytest.mark.parametrize('value,expected', [
    ('net.ifnames=0', 'net.ifnames=0'), ('true', '"true"'), ('yes', '"yes"'), ('10', '"10"'), ('1.5', '"1.5"'),
    ('0x1f', '"0x1f"'), ('null', '"null"'), ('%x', "'%x'"), ('-', "'-'"), ('-console', '-console'),
    ('a:', "'a:'"), ('2024-01-01', '"2024-01-01"'), ('console=ttyS0,115200', 'console=ttyS0,115200')])
def test_scalars_are_quoted_as_yaml_v3_quotes_them(value, expected):
    assert tf._scalar(value) == expected


@pytest.mark.parametrize('args', [['a b'], ['"x"'], ['a#b c']])
def test_kernel_arguments_with_spaces_or_quotes_are_refused(args):
    with pytest.raises(tf.FactoryError, match='invalid extra kernel argument'):
        tf.schematic_document([], args)


def test_bad_extension_name_is_refused_by_name():
    with pytest.raises(tf.FactoryError, match="'Qemu Agent'"):
        tf.extension_names(['Qemu Agent'])


def test_urls_and_installer_follow_the_factory_host():
    found = tf.describe(['qemu-guest-agent'], version='v1.11.6')
    sid = 'ce4c980550dd2ab1b17bbf2b08801c7eb59418eafe8f279833297925d67c7515'
    assert found['iso_url'] == 'https://factory.talos.dev/image/{0}/v1.11.6/metal-amd64.iso'.format(sid)
    assert found['installer_image'] == 'factory.talos.dev/metal-installer/{0}:v1.11.6'.format(sid)
    assert found['iso_filename'] == 'talos-v1.11.6-metal-amd64-ce4c980550dd.iso'
    local = tf.describe(['qemu-guest-agent'], version='v1.11.6', factory_url='https://127.0.10.6:8080/',
                        arch='arm64')
    assert local['iso_url'] == 'https://127.0.10.6:8080/image/{0}/v1.11.6/metal-arm64.iso'.format(sid)
    assert local['installer_image'] == '127.0.10.6:8080/metal-installer/{0}:v1.11.6'.format(sid)


def test_installer_before_talos_1_10_is_the_plain_installer():
    assert tf.installer_image(None, 'abc', 'v1.9.4') == 'factory.talos.dev/installer/abc:v1.9.4'


@pytest.mark.parametrize('kwargs,message', [
    ({'version': '1.11.6'}, 'invalid Talos version'), ({'version': 'latest'}, 'invalid Talos version'),
    ({'arch': 'x86_64'}, 'invalid arch'), ({'factory_url': 'factory.talos.dev'}, 'invalid factory_url'),
    ({'platform': 'Metal AMD'}, 'invalid platform')])
def test_bad_inputs_fail_naming_them(kwargs, message):
    with pytest.raises(tf.FactoryError, match=message):
        tf.describe(['qemu-guest-agent'], **kwargs)


def test_missing_extensions_names_what_is_missing():
    assert tf.missing_extensions(['iscsi-tools'], [tf.GUEST_AGENT]) == [tf.GUEST_AGENT]
    assert tf.missing_extensions(['qemu-guest-agent'], [tf.GUEST_AGENT]) == []
