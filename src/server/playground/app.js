// Slipstream playground: plain browser JavaScript, no build step. It talks to the server's own
// OpenAI-compatible API: streamed replies come from /v1/chat/completions and /v1/completions as
// server-sent events read with fetch + ReadableStream, the Stop button aborts the fetch (the
// server then aborts the request in the engine), and the status panel polls /metrics.

const KEY_STORAGE = 'slipstream.apiKey';
const METRICS_EVERY_MS = 1000;
// One poll that never answers must not freeze the panel: each poll gives up after this long, and
// the next one is scheduled whatever happened.
const METRICS_TIMEOUT_MS = 3000;

const $ = (id) => document.getElementById(id);

/** The request in flight (one at a time), so Stop and Escape can cancel it. */
let controller = null;
/** The conversation sent with each chat turn. */
const history = [];
let modelName = null;

// ---------------------------------------------------------------------------------------------
// API key: asked for once, kept in localStorage, sent as a Bearer token.

function apiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || '';
  } catch {
    return ''; // storage disabled: the key lives only in this page
  }
}

function headers() {
  const h = { 'content-type': 'application/json' };
  const key = apiKey();
  if (key) h.authorization = `Bearer ${key}`;
  return h;
}

function askForKey(message) {
  const dialog = $('key-dialog');
  if (message) $('key-help').textContent = message;
  $('key-input').value = apiKey();
  if (!dialog.open) dialog.showModal();
  $('key-input').focus();
}

$('key-button').addEventListener('click', () => askForKey());
$('key-form').addEventListener('submit', () => {
  try {
    localStorage.setItem(KEY_STORAGE, $('key-input').value.trim());
  } catch {
    /* storage disabled */
  }
  loadModel();
});
$('key-forget').addEventListener('click', () => {
  try {
    localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled */
  }
  $('key-dialog').close();
  loadModel();
});
$('key-cancel').addEventListener('click', () => $('key-dialog').close());

/** The server's error message from an OpenAI-style error body, or the status line. */
async function errorText(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch {
    /* not JSON */
  }
  return `${res.status} ${res.statusText}`;
}

async function loadModel() {
  try {
    const res = await fetch('/v1/models', { headers: headers() });
    if (res.status === 401) {
      $('model-name').textContent = 'API key needed';
      askForKey(apiKey() ? 'The saved API key was refused. Enter the right one.' : undefined);
      return;
    }
    if (!res.ok) throw new Error(await errorText(res));
    const body = await res.json();
    modelName = body.data[0].id;
    $('model-name').textContent = modelName;
  } catch (e) {
    $('model-name').textContent = 'unavailable';
    showError(`Could not read the model list: ${e.message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Sampling parameters, read from the settings form at send time.

function numberField(id, label) {
  const el = $(id);
  if (!el.checkValidity()) {
    el.focus();
    throw new Error(`${label}: ${el.validationMessage}`);
  }
  return el.value.trim() === '' ? undefined : Number(el.value);
}

function samplingBody() {
  const body = {
    temperature: numberField('temperature', 'Temperature'),
    top_p: numberField('top-p', 'Top-p'),
    max_tokens: numberField('max-tokens', 'Max tokens'),
    stream: true,
    stream_options: { include_usage: true },
  };
  const topK = numberField('top-k', 'Top-k');
  if (topK) body.top_k = topK;
  const seed = numberField('seed', 'Seed');
  if (seed !== undefined) body.seed = seed;
  const stop = $('stop-strings').value.split('\n').filter((s) => s !== '');
  if (stop.length) body.stop = stop;
  // A Slipstream/vLLM extension: only sent when asked for, so the body stays plain OpenAI.
  if ($('ignore-eos').checked) body.ignore_eos = true;
  if (modelName) body.model = modelName;
  for (const k of Object.keys(body)) if (body[k] === undefined) delete body[k];
  return body;
}

// ---------------------------------------------------------------------------------------------
// Streaming: POST, then read `data: {...}` events until `data: [DONE]`.

/** Yields each event's data (a string) from an SSE response body. */
async function* sseEvents(res) {
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value.replace(/\r\n?/g, '\n');
      let end;
      while ((end = buf.indexOf('\n\n')) >= 0) {
        const block = buf.slice(0, end);
        buf = buf.slice(end + 2);
        const data = block
          .split('\n')
          .filter((l) => l.startsWith('data:'))
          .map((l) => l.slice(l.startsWith('data: ') ? 6 : 5))
          .join('\n');
        if (data === '[DONE]') return;
        if (data !== '') yield data;
      }
    }
  } finally {
    reader.releaseLock();
  }
}

function formatStats(s) {
  const parts = [];
  if (s.ttft !== undefined) parts.push(`TTFT ${Math.round(s.ttft)} ms`);
  // Decode speed: tokens after the first over the time since the first.
  const span = (s.last - s.first) / 1000;
  if (s.tokens > 1 && span > 0) parts.push(`${((s.tokens - 1) / span).toFixed(1)} tok/s`);
  parts.push(`${s.tokens} token${s.tokens === 1 ? '' : 's'}`);
  if (s.outcome) parts.push(s.outcome);
  return parts.join(' · ');
}

/**
 * Sends one streamed request and feeds its text to onText as it arrives; onStats gets the live
 * figures. Resolves to 'done' | 'stopped'; throws on HTTP and network errors.
 */
async function stream(path, body, onText, onStats) {
  controller = new AbortController();
  setBusy(true);
  const stats = { start: performance.now(), tokens: 0, ttft: undefined, first: 0, last: 0, outcome: '' };
  let finish = null;
  try {
    const res = await fetch(path, { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (res.status === 401) {
      askForKey(apiKey() ? 'The saved API key was refused. Enter the right one.' : undefined);
      throw new Error('the server needs an API key: enter it, then send again');
    }
    if (!res.ok) throw new Error(await errorText(res));
    for await (const data of sseEvents(res)) {
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message || 'the server reported an error');
      const choice = chunk.choices && chunk.choices[0];
      const text = choice ? (choice.delta ? choice.delta.content : choice.text) : '';
      if (text) {
        const now = performance.now();
        if (stats.ttft === undefined) {
          stats.ttft = now - stats.start;
          stats.first = now;
        }
        stats.last = now;
        stats.tokens++; // one chunk per token while streaming; usage below has the exact count
        onText(text);
      }
      if (choice && choice.finish_reason) finish = choice.finish_reason;
      if (chunk.usage) stats.tokens = chunk.usage.completion_tokens;
      onStats(formatStats(stats));
    }
    stats.outcome = finish ? `finished: ${finish}` : 'finished';
    onStats(formatStats(stats));
    return 'done';
  } catch (e) {
    if (controller.signal.aborted) {
      stats.outcome = 'stopped';
      onStats(formatStats(stats));
      return 'stopped';
    }
    throw e;
  } finally {
    controller = null;
    setBusy(false);
  }
}

function stop() {
  if (controller) controller.abort();
}

/** Enables Send or Stop, keeping keyboard focus on a usable control. */
function setBusy(busy) {
  const focused = document.activeElement;
  for (const view of ['chat', 'completion']) {
    const send = $(`${view}-send`);
    const stopButton = $(`${view}-stop`);
    send.disabled = busy;
    stopButton.disabled = !busy;
    if (busy && focused === send) stopButton.focus();
    if (!busy && focused === stopButton) $(`${view}-input`).focus();
  }
}

function showError(message) {
  $('error').textContent = message ? `Error: ${message}` : '';
}

// ---------------------------------------------------------------------------------------------
// Chat view.

function addMessage(role, text) {
  const wrap = document.createElement('article');
  wrap.className = `msg ${role}`;
  const who = document.createElement('h3');
  who.className = 'who';
  who.textContent = role === 'user' ? 'You' : 'Assistant';
  const body = document.createElement('p');
  body.className = 'text';
  body.textContent = text;
  wrap.append(who, body);
  $('chat-log').append(wrap);
  return wrap;
}

/** The sampling settings as a request body, or null after showing what is wrong with them. */
function readSampling() {
  showError('');
  try {
    return samplingBody();
  } catch (e) {
    showError(e.message);
    return null;
  }
}

async function sendChat() {
  const input = $('chat-input');
  const text = input.value;
  if (controller || text.trim() === '') return;
  const body = readSampling();
  if (!body) return;
  history.push({ role: 'user', content: text });
  body.messages = history.slice();
  input.value = '';
  addMessage('user', text);
  const reply = addMessage('assistant', '');
  const replyText = reply.querySelector('.text');
  const statsLine = document.createElement('p');
  statsLine.className = 'stats';
  reply.append(statsLine);
  reply.dataset.state = 'streaming';
  reply.setAttribute('aria-busy', 'true'); // screen readers read the reply once, when complete
  let content = '';
  try {
    const outcome = await stream(
      '/v1/chat/completions',
      body,
      (t) => {
        content += t;
        replyText.textContent = content;
        reply.scrollIntoView({ block: 'end' });
      },
      (s) => (statsLine.textContent = s),
    );
    reply.dataset.state = outcome;
    history.push({ role: 'assistant', content });
  } catch (e) {
    reply.dataset.state = 'error';
    showError(e.message);
    // The turn failed: drop it so the next one is not sent a dangling user message.
    history.pop();
    if (content === '') {
      reply.remove();
      if (input.value === '') input.value = text;
    }
  } finally {
    reply.removeAttribute('aria-busy');
  }
}

$('chat-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sendChat();
});
$('chat-input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendChat();
  }
});
$('chat-stop').addEventListener('click', stop);
$('chat-clear').addEventListener('click', () => {
  stop();
  history.length = 0;
  $('chat-log').replaceChildren();
  $('chat-input').focus();
});

// ---------------------------------------------------------------------------------------------
// Completion view.

async function sendCompletion() {
  const prompt = $('completion-input').value;
  if (controller || prompt === '') return;
  const body = readSampling();
  if (!body) return;
  body.prompt = prompt;
  const out = $('completion-output');
  $('completion-prompt').textContent = prompt;
  out.textContent = '';
  out.dataset.state = 'streaming';
  $('completion-stats').textContent = '';
  let content = '';
  try {
    out.dataset.state = await stream(
      '/v1/completions',
      body,
      (t) => {
        content += t;
        out.textContent = content;
      },
      (s) => ($('completion-stats').textContent = s),
    );
  } catch (e) {
    out.dataset.state = 'error';
    showError(e.message);
  }
}

$('completion-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sendCompletion();
});
$('completion-stop').addEventListener('click', stop);

// ---------------------------------------------------------------------------------------------
// Mode switch and keyboard shortcuts.

for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener('change', () => {
    const chat = radio.value === 'chat' && radio.checked;
    $('chat-view').hidden = !chat;
    $('completion-view').hidden = chat;
  });
}

// Escape stops a generation (unless it is closing the key dialog).
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && controller && !$('key-dialog').open) stop();
});

// ---------------------------------------------------------------------------------------------
// Status panel: the engine gauges from /metrics (open even when the API needs a key).

function parseMetrics(text) {
  const m = {};
  for (const line of text.split('\n')) {
    if (line.startsWith('#') || line === '') continue;
    const [name, value] = line.split(' ');
    if (!name.includes('{')) m[name] = Number(value);
  }
  return m;
}

const percent = (x) => `${(x * 100).toFixed(1)}%`;

async function pollMetrics() {
  if (!document.hidden) {
    try {
      const res = await fetch('/metrics', { signal: AbortSignal.timeout(METRICS_TIMEOUT_MS) });
      if (!res.ok) throw new Error(`${res.status}`);
      const m = parseMetrics(await res.text());
      $('st-running').textContent = String(m.slipstream_requests_running ?? '–');
      $('st-waiting').textContent = String(m.slipstream_requests_waiting ?? '–');
      const used = m.slipstream_kv_blocks_used;
      const total = m.slipstream_kv_blocks_total;
      if (used !== undefined && total) {
        $('st-kv').textContent = `${used} / ${total} blocks (${percent(used / total)})`;
        $('st-kv-meter').value = used / total;
      }
      const hit = m.slipstream_prefix_cache_hit_rate;
      $('st-hit').textContent = hit === undefined ? '–' : percent(hit);
      $('st-note').textContent = '';
    } catch (e) {
      const why = e.name === 'TimeoutError' ? `no answer in ${METRICS_TIMEOUT_MS / 1000} s` : e.message;
      $('st-note').textContent = `Status unavailable (${why}).`;
    }
  }
  setTimeout(pollMetrics, METRICS_EVERY_MS);
}

loadModel();
pollMetrics();
