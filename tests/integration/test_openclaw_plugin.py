"""playbooks/openclaw.yml against the lab's OpenClaw node over SSH: the Kaze plugin copied, checked, installed and
enabled with the node's own openclaw CLI, then read back on the node with that CLI and with plain file reads."""

import json
import re
import shutil

import pytest
from harness import play_recap, run_playbook

from conftest import REPO, secret_value

pytestmark = pytest.mark.lab

PLUGIN = REPO / 'files' / 'openclaw' / 'kaze'
TOOLS = ['kaze_dispatch_task', 'kaze_list_verticals', 'kaze_agent_status']
HANDLER = 'RUNNING HANDLER [ephemeral.castle.openclaw_plugin : Restart or reload the OpenClaw gateway]'
# Someone else's plugin entry, already in openclaw.json before the role first runs.
OTHER_ENTRY = {'config': {'provider': 'twilio', 'fromNumber': '+15550100'}}
RUNTIME_URL = 'http://kaze-runtime.castle.internal:8080'
KNOWLEDGE_URL = 'http://kaze-knowledge.castle.internal:8080'
SNAPSHOT = r"""
cd "$HOME/.openclaw" 2>/dev/null || exit 0
for f in openclaw.json .env; do [ -e "$f" ] && stat -c '%n %a %s' "$f" && sha256sum "$f"; done
find castle-plugins -printf '%p %y %l %m\n' 2>/dev/null | sort
find castle-plugins -type f -exec sha256sum {} + 2>/dev/null | sort
true
"""


def ssh(lab, env, command, check=True):
    return lab.run('ssh', '-i', env['CASTLE_OPENCLAW_KEY'], '-p', env['CASTLE_OPENCLAW_PORT'], '-o', 'BatchMode=yes',
                   '-o', 'IdentitiesOnly=yes', '-o', 'UserKnownHostsFile=' + env['CASTLE_OPENCLAW_KNOWN_HOSTS'],
                   '{0}@{1}'.format(env['CASTLE_OPENCLAW_USER'], env['CASTLE_OPENCLAW_HOST']), command,
                   env=env, check=check, timeout=300)


def node_config(lab, env):
    return json.loads(ssh(lab, env, 'cat "$HOME/.openclaw/openclaw.json"').stdout)


def snapshot(lab, env):
    return ssh(lab, env, SNAPSHOT).stdout


def diff_lines(proc, path_end):
    """The +/- lines of the diff shown for the file whose name ends with path_end."""
    lines, inside = [], False
    for line in proc.stdout.splitlines():
        if line.startswith('--- before: '):
            inside = line.split('--- before: ', 1)[1].split(' (', 1)[0].endswith(path_end)
        elif inside and re.match(r'^[-+]', line) and not line.startswith('+++ '):
            lines.append(line)
    return lines


@pytest.fixture(scope='module')
def token():
    return secret_value('kaze-token')


@pytest.fixture(scope='module')
def node(lab, env):
    """The node without any OpenClaw state but a config holding another plugin's entry."""
    seed = json.dumps({'plugins': {'entries': {'voice-call': OTHER_ENTRY}}}, indent=2)
    ssh(lab, env, 'rm -rf "$HOME/.openclaw" && mkdir -m 700 "$HOME/.openclaw" && '
                  "printf '%s\\n' '{0}' > \"$HOME/.openclaw/openclaw.json\"".format(seed))
    assert node_config(lab, env)['plugins']['entries']['voice-call'] == OTHER_ENTRY
    return env


@pytest.fixture(scope='module')
def play(lab, node, token):
    def run(*args, check=False, **overrides):
        extra = {'openclaw_plugin_runtime_url': RUNTIME_URL, 'openclaw_plugin_knowledge_url': KNOWLEDGE_URL,
                 'openclaw_plugin_api_token': token, **overrides}
        proc = run_playbook(node, 'playbooks/openclaw.yml', *args, inventory=lab.inventory / 'hosts.yml', check=check,
                            diff=True, extra_vars=extra)
        assert token not in proc.stdout + proc.stderr
        return proc
    return run


def test_check_mode_on_a_fresh_node_changes_nothing(lab, node, play):
    before = snapshot(lab, node)
    proc = play(check=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert play_recap(proc)['openclaw-node']['changed'] > 0
    assert snapshot(lab, node) == before


def test_first_run_installs_enables_and_loads_the_plugin(lab, node, play, token):
    proc = play()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert play_recap(proc)['openclaw-node']['changed'] > 0
    assert 'kaze 1.0.0 loaded with {0}'.format(', '.join(TOOLS)) in proc.stdout
    config = node_config(lab, node)
    entries = config['plugins']['entries']
    assert entries['voice-call'] == OTHER_ENTRY
    assert entries['kaze']['enabled'] is True
    assert entries['kaze']['config'] == {'runtimeUrl': RUNTIME_URL, 'knowledgeUrl': KNOWLEDGE_URL}
    current = ssh(lab, node, 'echo "$HOME/.openclaw/castle-plugins/kaze/current"').stdout.strip()
    assert current in config['plugins']['load']['paths']
    assert re.search(r'/castle-plugins/kaze/1\.0\.0-[0-9a-f]{12}$', ssh(lab, node, 'readlink "{0}"'.format(current)).stdout)
    dotenv = ssh(lab, node, 'stat -c %a "$HOME/.openclaw/.env" && cat "$HOME/.openclaw/.env"').stdout.splitlines()
    assert dotenv[0] == '600'
    assert sorted(dotenv[1:]) == sorted(['KAZE_RUNTIME_URL=' + RUNTIME_URL, 'KAZE_KNOWLEDGE_URL=' + KNOWLEDGE_URL,
                                         'KAZE_API_TOKEN=' + token])
    for name in ('index.js', 'package.json', 'openclaw.plugin.json'):
        shipped = (PLUGIN / name).read_text()
        assert ssh(lab, node, 'cat "{0}/{1}"'.format(current, name)).stdout == shipped


def test_second_run_changes_nothing_and_restarts_nothing(lab, node, play):
    before = snapshot(lab, node)
    proc = play()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert play_recap(proc)['openclaw-node']['changed'] == 0
    assert 'RUNNING HANDLER' not in proc.stdout
    assert snapshot(lab, node) == before
    assert node_config(lab, node)['plugins']['entries']['voice-call'] == OTHER_ENTRY


def test_a_new_runtime_url_changes_that_key_only_and_reloads_once(lab, node, play):
    new_url = 'http://kaze-runtime-2.castle.internal:8080'
    before_config = node_config(lab, node)
    before = snapshot(lab, node)
    checked = play(check=True, openclaw_plugin_runtime_url=new_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert snapshot(lab, node) == before, 'check mode leaves the node as it was'
    expected_diff = ['-          "runtimeUrl": "{0}",'.format(RUNTIME_URL),
                     '+          "runtimeUrl": "{0}",'.format(new_url)]
    assert diff_lines(checked, 'openclaw.json') == expected_diff

    proc = play(openclaw_plugin_runtime_url=new_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert diff_lines(proc, 'openclaw.json') == expected_diff
    assert diff_lines(proc, '.env') == [], 'the environment file holds secrets: no diff of it is shown'
    assert 'KAZE_RUNTIME_URL=' + new_url in ssh(lab, node, 'cat "$HOME/.openclaw/.env"').stdout
    assert proc.stdout.count(HANDLER) == 1
    after_config = node_config(lab, node)
    before_config['plugins']['entries']['kaze']['config']['runtimeUrl'] = new_url
    assert after_config == before_config, 'nothing else in openclaw.json moved'


def test_a_broken_manifest_fails_with_openclaws_error_and_the_installed_version_keeps_loading(
        lab, node, play, tmp_path):
    # Same version number, broken content: the files the gateway loads must not be touched either.
    broken = tmp_path / 'kaze'
    shutil.copytree(PLUGIN, broken, ignore=shutil.ignore_patterns('test'))
    manifest = json.loads((broken / 'openclaw.plugin.json').read_text())
    del manifest['configSchema']
    (broken / 'openclaw.plugin.json').write_text(json.dumps(manifest, indent=2))
    link = '"$HOME/.openclaw/castle-plugins/kaze/current"'
    installed = ssh(lab, node, 'readlink {0}'.format(link)).stdout.strip()

    proc = play(openclaw_plugin_source=str(broken))
    assert proc.returncode != 0
    assert 'refuses kaze 1.0.0' in proc.stdout
    assert 'plugin manifest requires configSchema' in proc.stdout
    assert ssh(lab, node, 'readlink {0}'.format(link)).stdout.strip() == installed
    assert ssh(lab, node, 'cat {0}/openclaw.plugin.json'.format(link)).stdout == (PLUGIN / 'openclaw.plugin.json').read_text()

    inspect = ssh(lab, node, 'openclaw plugins inspect kaze --runtime --json 2>/dev/null')
    report = json.loads(inspect.stdout)
    assert report['plugin']['enabled'] is True
    assert report['plugin']['status'] == 'loaded'
    assert report['plugin']['version'] == '1.0.0'
    assert report['plugin']['toolNames'] == TOOLS
    assert sorted(hook['name'] for hook in report['typedHooks']) == ['before_tool_call', 'message_sent']
    assert node_config(lab, node)['plugins']['entries']['voice-call'] == OTHER_ENTRY


def test_a_node_without_the_cli_fails_naming_the_host_and_the_binary(play):
    proc = play(openclaw_plugin_cli='openclaw-not-installed')
    assert proc.returncode != 0
    assert "the OpenClaw CLI 'openclaw-not-installed' is not installed on openclaw-node" in proc.stdout
