// Unit tests of the Kaze plugin against a local fake Kaze runtime and kaze-knowledge (node --test).
// Copyright: ephemeral.castle maintainers (@ephemeral-castle)
// GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

import { after, before, beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

import plugin, { TOOL_NAMES, registerKaze, resolveSettings, summarize } from '../index.js';

const manifest = JSON.parse(readFileSync(new URL('../openclaw.plugin.json', import.meta.url)));
const packageJson = JSON.parse(readFileSync(new URL('../package.json', import.meta.url)));

// The fake service: routes answer by method and path; every request is recorded.
let server;
let baseUrl;
let requests;
let routes;

function reply(res, status, body, type = 'application/json') {
  res.writeHead(status, { 'content-type': type });
  res.end(typeof body === 'string' ? body : JSON.stringify(body));
}

before(async () => {
  server = createServer((req, res) => {
    let raw = '';
    req.on('data', (chunk) => { raw += chunk; });
    req.on('end', () => {
      const entry = { method: req.method, url: req.url, headers: req.headers, body: raw ? JSON.parse(raw) : undefined };
      requests.push(entry);
      const route = routes[`${req.method} ${req.url}`];
      if (!route) return reply(res, 404, { error: `no route ${req.method} ${req.url}` });
      return route(req, res, entry);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${server.address().port}`;
});

after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  requests = [];
  routes = {};
});

// A stand-in for the gateway's plugin api: records what the plugin registers.
function fakeApi(pluginConfig) {
  const api = { pluginConfig, tools: {}, hooks: {}, hookOptions: {}, warnings: [] };
  api.registerTool = (tool) => { api.tools[tool.name] = tool; };
  api.on = (name, handler, options) => { api.hooks[name] = handler; api.hookOptions[name] = options; };
  api.logger = { warn: (message) => api.warnings.push(message), info() {}, error() {}, debug() {} };
  return api;
}

function loaded(config = {}, env = {}) {
  const api = fakeApi({ runtimeUrl: `${baseUrl}/runtime/`, knowledgeUrl: `${baseUrl}/knowledge`, ...config });
  registerKaze(api, env);
  return api;
}

describe('registration', () => {
  test('registers the three manifest tools and both hooks', () => {
    const api = fakeApi({ runtimeUrl: 'http://runtime.invalid', knowledgeUrl: 'http://knowledge.invalid' });
    plugin.register(api);
    assert.deepEqual(Object.keys(api.tools).sort(), [...TOOL_NAMES].sort());
    assert.deepEqual([...manifest.contracts.tools].sort(), [...TOOL_NAMES].sort());
    assert.deepEqual(Object.keys(api.hooks).sort(), ['before_tool_call', 'message_sent']);
    assert.equal(plugin.id, manifest.id);
    assert.ok(api.hookOptions.before_tool_call.timeoutMs > 10000);
  });

  test('the manifest requires both URLs and the package points at this entry', () => {
    assert.deepEqual(manifest.configSchema.required, ['runtimeUrl', 'knowledgeUrl']);
    assert.equal(manifest.configSchema.properties.runtimeUrl.format, 'uri');
    assert.equal(manifest.configSchema.properties.knowledgeUrl.format, 'uri');
    assert.deepEqual(packageJson.openclaw.extensions, ['./index.js']);
    assert.equal(manifest.version, packageJson.version);
  });

  test('plugin config wins over the environment, which fills the gaps', () => {
    const env = { KAZE_RUNTIME_URL: 'http://env-runtime', KAZE_KNOWLEDGE_URL: 'http://env-knowledge', KAZE_API_TOKEN: 't0k' };
    const both = resolveSettings({ runtimeUrl: 'http://cfg-runtime', knowledgeUrl: 'http://cfg-knowledge' }, env);
    assert.equal(both.runtimeUrl, 'http://cfg-runtime');
    assert.equal(both.knowledgeUrl, 'http://cfg-knowledge');
    const fallback = resolveSettings({ timeoutMs: 2500 }, env);
    assert.equal(fallback.runtimeUrl, 'http://env-runtime');
    assert.equal(fallback.knowledgeUrl, 'http://env-knowledge');
    assert.equal(fallback.token, 't0k');
    assert.equal(fallback.timeoutMs, 2500);
    assert.equal(resolveSettings(undefined, {}).runtimeUrl, undefined);
  });
});

describe('tools', () => {
  test('kaze_dispatch_task posts the task and answers the task id', async () => {
    routes['POST /runtime/v1/tasks'] = (req, res, entry) => reply(res, 201,
      { taskId: 'task-7', status: 'queued', echo: entry.body });
    const api = loaded({}, { KAZE_API_TOKEN: 'sekret' });
    const result = await api.tools.kaze_dispatch_task.execute('call-1',
      { vertical: 'legal', skill: 'summarize', input: { doc: 'a.pdf' } });
    assert.equal(result.details.ok, true);
    assert.equal(result.details.result.taskId, 'task-7');
    assert.match(result.content[0].text, /task-7/);
    assert.equal(requests.length, 1);
    assert.deepEqual(requests[0].body, { vertical: 'legal', skill: 'summarize', input: { doc: 'a.pdf' } });
    assert.equal(requests[0].headers.authorization, 'Bearer sekret');
  });

  test('kaze_list_verticals and kaze_agent_status read the runtime', async () => {
    routes['GET /runtime/v1/verticals'] = (req, res) => reply(res, 200,
      { verticals: [{ name: 'legal', skills: ['summarize'] }] });
    routes['GET /runtime/v1/agents/agent%2F1/status'] = (req, res) => reply(res, 200, { agentId: 'agent/1', state: 'idle' });
    const api = loaded();
    const verticals = await api.tools.kaze_list_verticals.execute('call-2', {});
    assert.deepEqual(verticals.details.result.verticals[0].skills, ['summarize']);
    const status = await api.tools.kaze_agent_status.execute('call-3', { agentId: 'agent/1' });
    assert.equal(status.details.result.state, 'idle');
    assert.equal(requests[0].headers.authorization, undefined);
  });

  test('a non-2xx answer is a tool error naming the status and body', async () => {
    routes['POST /runtime/v1/tasks'] = (req, res) => reply(res, 503, { error: 'vertical legal is draining' });
    const api = loaded();
    const result = await api.tools.kaze_dispatch_task.execute('call-4', { vertical: 'legal', skill: 's', input: 'x' });
    assert.equal(result.details.ok, false);
    assert.equal(result.details.status, 'failed');
    assert.match(result.details.error, /HTTP 503/);
    assert.match(result.details.error, /vertical legal is draining/);
    assert.match(result.content[0].text, /^kaze_dispatch_task failed: kaze runtime: POST http:\/\/127\.0\.0\.1:\d+\/runtime\/v1\/tasks/);
  });

  test('invalid JSON is a tool error', async () => {
    routes['GET /runtime/v1/verticals'] = (req, res) => reply(res, 200, '<html>proxy</html>', 'text/html');
    const result = await loaded().tools.kaze_list_verticals.execute('call-5', {});
    assert.equal(result.details.ok, false);
    assert.match(result.details.error, /invalid JSON: <html>proxy<\/html>/);
  });

  test('a runtime that does not answer in time is a timed-out tool error', async () => {
    routes['GET /runtime/v1/verticals'] = () => {}; // never answers
    const started = Date.now();
    const result = await loaded({ timeoutMs: 200 }).tools.kaze_list_verticals.execute('call-6', {});
    assert.ok(Date.now() - started < 5000);
    assert.equal(result.details.ok, false);
    assert.equal(result.details.timedOut, true);
    assert.equal(result.details.timeoutMs, 200);
    assert.match(result.details.error, /no answer from GET .* within 200 ms/);
  });

  test('an unreachable runtime is a tool error naming the URL', async () => {
    const closed = createServer();
    await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = closed.address().port;
    await new Promise((resolve) => closed.close(resolve));
    const result = await loaded({ runtimeUrl: `http://127.0.0.1:${port}` }).tools.kaze_agent_status
      .execute('call-7', { agentId: 'a1' });
    assert.equal(result.details.ok, false);
    assert.match(result.details.error, new RegExp(`cannot reach GET http://127\\.0\\.0\\.1:${port}/v1/agents/a1/status: ECONNREFUSED`));
  });

  test('missing URL and bad parameters are tool errors, not exceptions', async () => {
    const api = fakeApi({});
    registerKaze(api, {});
    const unset = await api.tools.kaze_list_verticals.execute('call-8', {});
    assert.match(unset.details.error, /no URL configured \(set plugins\.entries\.kaze\.config\.runtimeUrl or KAZE_RUNTIME_URL\)/);
    const bad = await loaded().tools.kaze_dispatch_task.execute('call-9', { vertical: '', skill: 's', input: 1 });
    assert.match(bad.details.error, /parameter vertical must be a non-empty string/);
    assert.equal(requests.length, 0);
  });
});

describe('hooks', () => {
  test('before_tool_call injects kaze-knowledge context into kaze_dispatch_task', async () => {
    routes['POST /knowledge/v1/context'] = (req, res) => reply(res, 200, { context: 'client prefers short answers' });
    const api = loaded();
    const params = { vertical: 'legal', skill: 'summarize', input: 'contract 12' };
    const result = await api.hooks.before_tool_call({ toolName: 'kaze_dispatch_task', params }, { sessionKey: 'sess-1' });
    assert.deepEqual(result, { params: { ...params, context: 'client prefers short answers' } });
    assert.deepEqual(requests[0].body, { vertical: 'legal', skill: 'summarize', query: 'contract 12', sessionKey: 'sess-1' });
    assert.equal(await api.hooks.before_tool_call({ toolName: 'exec', params: { command: 'ls' } }, {}), undefined);
    assert.equal(requests.length, 1);
  });

  test('the injected context reaches the runtime with the task', async () => {
    routes['POST /knowledge/v1/context'] = (req, res) => reply(res, 200, { context: 'ctx-42' });
    routes['POST /runtime/v1/tasks'] = (req, res) => reply(res, 200, { taskId: 't1', status: 'done', result: 'ok' });
    const api = loaded();
    const hooked = await api.hooks.before_tool_call(
      { toolName: 'kaze_dispatch_task', params: { vertical: 'v', skill: 's', input: 'i' } }, {});
    await api.tools.kaze_dispatch_task.execute('call-10', hooked.params);
    assert.equal(requests[1].body.context, 'ctx-42');
  });

  test('a knowledge failure leaves the tool call untouched and never throws', async () => {
    routes['POST /knowledge/v1/context'] = (req, res) => reply(res, 500, 'boom', 'text/plain');
    const api = loaded();
    const result = await api.hooks.before_tool_call(
      { toolName: 'kaze_dispatch_task', params: { vertical: 'v', skill: 's', input: 'i' } }, {});
    assert.equal(result, undefined);
    assert.match(api.warnings[0], /no knowledge context .* HTTP 500: boom/);
  });

  test('message_sent stores a bounded summary of a delivered reply', async () => {
    routes['POST /knowledge/v1/summaries'] = (req, res) => reply(res, 204, '');
    const api = loaded({ summaryMaxChars: 80 });
    const content = `The   contract\nreview is done. ${'Clause text follows. '.repeat(20)}`;
    await api.hooks.message_sent({ to: 'user:1', content, success: true, sessionKey: 'sess-2', runId: 'run-3' },
      { channelId: 'telegram' });
    assert.equal(requests.length, 1);
    const stored = requests[0].body;
    assert.equal(stored.sessionKey, 'sess-2');
    assert.equal(stored.runId, 'run-3');
    assert.equal(stored.channel, 'telegram');
    assert.ok(stored.summary.startsWith('The contract review is done.'));
    assert.ok(stored.summary.length <= 80);
    await api.hooks.message_sent({ to: 'user:1', content: 'lost', success: false }, {});
    assert.equal(requests.length, 1, 'failed deliveries are not summarized');
  });

  test('a knowledge outage after a message is logged, not thrown', async () => {
    routes['POST /knowledge/v1/summaries'] = () => {}; // never answers
    const api = loaded({ timeoutMs: 150 });
    await api.hooks.message_sent({ to: 'u', content: 'hello', success: true }, {});
    assert.match(api.warnings[0], /summary not stored: kaze-knowledge: no answer .* within 150 ms/);
  });

  test('summarize keeps short text and cuts long text at a word', () => {
    assert.equal(summarize('  a  b ', 80), 'a b');
    const cut = summarize('word '.repeat(50), 100);
    assert.ok(cut.length <= 100 && cut.endsWith('…') && !cut.includes('  '));
  });
});
