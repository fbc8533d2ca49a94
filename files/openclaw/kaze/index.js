// Kaze plugin for the OpenClaw gateway.
// Copyright: ephemeral.castle maintainers (@ephemeral-castle)
// GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
//
// Three tools call the Kaze runtime's HTTP API; a before_tool_call hook adds kaze-knowledge context
// to kaze_dispatch_task, and a message_sent hook stores a summary of each delivered assistant reply.
// The HTTP contract is described in docs/openclaw.md of the ephemeral.castle collection.

export const PLUGIN_ID = 'kaze';
export const TOOL_NAMES = ['kaze_dispatch_task', 'kaze_list_verticals', 'kaze_agent_status'];
export const DEFAULT_TIMEOUT_MS = 10000;
export const DEFAULT_SUMMARY_MAX_CHARS = 600;

/** A failure of the runtime or knowledge service, worded for the model and the operator. */
export class KazeError extends Error {
  constructor(message, { timedOut = false, timeoutMs, status } = {}) {
    super(message);
    this.name = 'KazeError';
    this.timedOut = timedOut;
    this.timeoutMs = timeoutMs;
    this.status = status;
  }
}

function positiveInt(value, fallback) {
  return Number.isInteger(value) && value > 0 ? value : fallback;
}

/** Plugin config first (plugins.entries.kaze.config), then the gateway's environment. */
export function resolveSettings(pluginConfig, env = process.env) {
  const config = pluginConfig && typeof pluginConfig === 'object' ? pluginConfig : {};
  const pick = (key, envName) => {
    const value = typeof config[key] === 'string' && config[key].trim() ? config[key] : env[envName];
    return typeof value === 'string' && value.trim() ? value.trim() : undefined;
  };
  return {
    runtimeUrl: pick('runtimeUrl', 'KAZE_RUNTIME_URL'),
    knowledgeUrl: pick('knowledgeUrl', 'KAZE_KNOWLEDGE_URL'),
    // The bearer token is a secret: only ever read from the environment.
    token: typeof env.KAZE_API_TOKEN === 'string' && env.KAZE_API_TOKEN ? env.KAZE_API_TOKEN : undefined,
    timeoutMs: positiveInt(config.timeoutMs, DEFAULT_TIMEOUT_MS),
    summaryMaxChars: positiveInt(config.summaryMaxChars, DEFAULT_SUMMARY_MAX_CHARS),
  };
}

function joinUrl(service, base, path) {
  let url;
  try {
    url = new URL(base);
  } catch {
    throw new KazeError(`${service}: base URL ${JSON.stringify(base)} is not a valid URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new KazeError(`${service}: base URL ${base} must use http or https`);
  }
  return `${url.href.replace(/\/+$/, '')}${path}`;
}

function excerpt(text, max = 200) {
  const flat = String(text).replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max)}…` : flat;
}

/** One JSON request with a deadline; every failure becomes a KazeError naming the service and URL. */
export async function requestJson(service, base, method, path, { body, token, timeoutMs, signal } = {}) {
  if (!base) {
    const envName = service === 'kaze-knowledge' ? 'KAZE_KNOWLEDGE_URL' : 'KAZE_RUNTIME_URL';
    const key = service === 'kaze-knowledge' ? 'knowledgeUrl' : 'runtimeUrl';
    throw new KazeError(`${service}: no URL configured (set plugins.entries.kaze.config.${key} or ${envName})`);
  }
  const url = joinUrl(service, base, path);
  const deadline = AbortSignal.timeout(timeoutMs);
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token) headers.authorization = `Bearer ${token}`;
  let response;
  let text;
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: signal ? AbortSignal.any([deadline, signal]) : deadline,
    });
    text = await response.text();
  } catch (err) {
    if (deadline.aborted) {
      throw new KazeError(`${service}: no answer from ${method} ${url} within ${timeoutMs} ms`,
        { timedOut: true, timeoutMs });
    }
    if (signal?.aborted) throw new KazeError(`${service}: ${method} ${url} was cancelled`);
    const reason = err?.cause?.code || err?.cause?.message || err?.message || String(err);
    throw new KazeError(`${service}: cannot reach ${method} ${url}: ${reason}`);
  }
  if (!response.ok) {
    const detail = text ? `: ${excerpt(text)}` : '';
    throw new KazeError(`${service}: ${method} ${url} answered HTTP ${response.status}${detail}`,
      { status: response.status });
  }
  if (response.status === 204 || text === '') return {};
  try {
    return JSON.parse(text);
  } catch {
    throw new KazeError(`${service}: ${method} ${url} answered invalid JSON: ${excerpt(text, 80)}`,
      { status: response.status });
  }
}

/** The two services' calls, bound to one set of settings. */
export function createClient(settings) {
  const runtime = (method, path, opts = {}) => requestJson('kaze runtime', settings.runtimeUrl, method, path,
    { ...opts, token: settings.token, timeoutMs: settings.timeoutMs });
  const knowledge = (method, path, opts = {}) => requestJson('kaze-knowledge', settings.knowledgeUrl, method, path,
    { ...opts, token: settings.token, timeoutMs: settings.timeoutMs });
  return {
    dispatchTask: (task, signal) => runtime('POST', '/v1/tasks', { body: task, signal }),
    listVerticals: (signal) => runtime('GET', '/v1/verticals', { signal }),
    agentStatus: (agentId, signal) => runtime('GET', `/v1/agents/${encodeURIComponent(agentId)}/status`, { signal }),
    context: (query, signal) => knowledge('POST', '/v1/context', { body: query, signal }),
    storeSummary: (summary) => knowledge('POST', '/v1/summaries', { body: summary }),
  };
}

function success(payload) {
  return {
    content: [{ type: 'text', text: JSON.stringify(payload, null, 2) }],
    details: { ok: true, result: payload },
  };
}

function failure(tool, err) {
  const message = err instanceof KazeError ? err.message : `unexpected failure: ${err?.message || String(err)}`;
  const details = { ok: false, status: 'failed', error: message };
  if (err instanceof KazeError && err.timedOut) {
    details.timedOut = true;
    details.timeoutMs = err.timeoutMs;
  }
  return { content: [{ type: 'text', text: `${tool} failed: ${message}` }], details };
}

function requireString(params, key) {
  const value = params?.[key];
  if (typeof value !== 'string' || !value.trim()) {
    throw new KazeError(`parameter ${key} must be a non-empty string`);
  }
  return value.trim();
}

/** Tool descriptors in OpenClaw's registerTool shape; execute never throws. */
export function buildTools(client) {
  const guarded = (name, run) => async (_toolCallId, params, signal) => {
    try {
      return success(await run(params ?? {}, signal));
    } catch (err) {
      return failure(name, err);
    }
  };
  return [
    {
      name: 'kaze_dispatch_task',
      label: 'Kaze: dispatch task',
      description: 'Dispatch a task to one skill of a Kaze vertical; answers the task id, its status and any result.',
      parameters: {
        type: 'object',
        additionalProperties: false,
        required: ['vertical', 'skill', 'input'],
        properties: {
          vertical: { type: 'string', description: 'Vertical name, as listed by kaze_list_verticals' },
          skill: { type: 'string', description: 'Skill of that vertical' },
          input: { description: 'Task input handed to the skill (text or a JSON object)' },
          context: { type: 'string', description: 'Background from kaze-knowledge; filled in by the plugin' },
        },
      },
      execute: guarded('kaze_dispatch_task', (params, signal) => {
        const task = { vertical: requireString(params, 'vertical'), skill: requireString(params, 'skill') };
        if (params.input === undefined || params.input === null) throw new KazeError('parameter input is required');
        task.input = params.input;
        if (typeof params.context === 'string' && params.context) task.context = params.context;
        return client.dispatchTask(task, signal);
      }),
    },
    {
      name: 'kaze_list_verticals',
      label: 'Kaze: list verticals',
      description: 'List the Kaze verticals and the skills each one offers.',
      parameters: { type: 'object', additionalProperties: false, properties: {} },
      execute: guarded('kaze_list_verticals', (_params, signal) => client.listVerticals(signal)),
    },
    {
      name: 'kaze_agent_status',
      label: 'Kaze: agent status',
      description: 'Report the state of one Kaze agent (idle, busy, failed) and its current task.',
      parameters: {
        type: 'object',
        additionalProperties: false,
        required: ['agentId'],
        properties: { agentId: { type: 'string', description: 'Kaze agent id' } },
      },
      execute: guarded('kaze_agent_status', (params, signal) => client.agentStatus(requireString(params, 'agentId'), signal)),
    },
  ];
}

function describeInput(input) {
  if (typeof input === 'string') return input;
  try {
    return JSON.stringify(input) ?? '';
  } catch {
    return '';
  }
}

/** before_tool_call: ask kaze-knowledge for context and hand it to kaze_dispatch_task as params.context. */
export function contextHook(client, logger) {
  return async (event, ctx) => {
    if (event?.toolName !== 'kaze_dispatch_task') return undefined;
    const params = event.params ?? {};
    try {
      const answer = await client.context({
        vertical: params.vertical,
        skill: params.skill,
        query: describeInput(params.input),
        sessionKey: ctx?.sessionKey,
      }, ctx?.abortSignal);
      if (typeof answer?.context !== 'string' || !answer.context) return undefined;
      return { params: { ...params, context: answer.context } };
    } catch (err) {
      // Context is an enrichment: the task still runs, without it.
      logger?.warn?.(`kaze: no knowledge context for kaze_dispatch_task: ${err.message}`);
      return undefined;
    }
  };
}

export function summarize(text, maxChars) {
  const flat = String(text ?? '').replace(/\s+/g, ' ').trim();
  if (flat.length <= maxChars) return flat;
  const cut = flat.slice(0, maxChars - 1);
  const space = cut.lastIndexOf(' ');
  return `${space > maxChars / 2 ? cut.slice(0, space) : cut}…`;
}

/** message_sent: store a summary of each delivered assistant reply in kaze-knowledge. */
export function summaryHook(client, settings, logger) {
  return async (event, ctx) => {
    if (!event?.success || typeof event.content !== 'string' || !event.content.trim()) return;
    try {
      await client.storeSummary({
        sessionKey: event.sessionKey ?? ctx?.sessionKey,
        runId: event.runId ?? ctx?.runId,
        channel: ctx?.channelId,
        to: event.to,
        summary: summarize(event.content, settings.summaryMaxChars),
      });
    } catch (err) {
      logger?.warn?.(`kaze: summary not stored: ${err.message}`);
    }
  };
}

/** Wire tools and hooks into an OpenClaw plugin api; env is the fallback for unset config. */
export function registerKaze(api, env = process.env) {
  const settings = resolveSettings(api.pluginConfig, env);
  const client = createClient(settings);
  for (const tool of buildTools(client)) api.registerTool(tool);
  // A thrown or timed-out before_tool_call blocks the call: keep the hook's budget above the request deadline.
  api.on('before_tool_call', contextHook(client, api.logger), { priority: 10, timeoutMs: settings.timeoutMs + 1000 });
  api.on('message_sent', summaryHook(client, settings, api.logger));
  return settings;
}

export default {
  id: PLUGIN_ID,
  name: 'Kaze',
  description: 'Dispatches tasks to the Kaze runtime and keeps kaze-knowledge in the loop',
  register(api) {
    registerKaze(api);
  },
};
