// Slipstream playground: plain browser JavaScript, no build step. It talks to the server's own
// OpenAI-compatible API: streamed replies come from /v1/chat/completions and /v1/completions as
// server-sent events read with fetch + ReadableStream, the Stop button aborts the fetch (the
// server then aborts the request in the engine), and the status panel polls /metrics.
//
// Context: before each request the page asks POST /tokenize how long the prompt is and how
// large the model's context is, lowers max_tokens to the room that is left, and in chat drops
// the oldest turns (saying so in the conversation) when even a short reply would not fit.

const KEY_STORAGE = 'slipstream.apiKey';
const METRICS_EVERY_MS = 1000;
// One poll that never answers must not freeze the panel: each poll gives up after this long, and
// the next one is scheduled whatever happened.
const METRICS_TIMEOUT_MS = 3000;
// The smallest reply worth asking for: with less room than this, older chat turns are dropped.
const MIN_REPLY_TOKENS = 32;

const $ = (id) => document.getElementById(id);

/** The request in flight (one at a time), so Stop and Escape can cancel it. */
let controller = null;
/** The conversation sent with each chat turn. */
const history = [];
let modelName = null;
/** The server's image model card (/v1/models, kind 'image'), if it serves one. */
let imageModel = null;

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
    const text = body.data.find((m) => m.kind !== 'image');
    imageModel = body.data.find((m) => m.kind === 'image') || null;
    modelName = text ? text.id : null;
    $('model-name').textContent = [modelName, imageModel && `${imageModel.id} (images)`].filter(Boolean).join(', ');
    $('image-mode').hidden = !imageModel;
    if (imageModel && !$('image-size').value) $('image-size').placeholder = imageModel.native_size;
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
// Fitting a request to the model's context.

/** { count, context } for a prompt or a conversation, from POST /tokenize; null if it cannot say. */
async function countTokens(payload) {
  try {
    const req = { ...payload };
    if (modelName) req.model = modelName;
    const res = await fetch('/tokenize', { method: 'POST', headers: headers(), body: JSON.stringify(req) });
    if (!res.ok) return null;
    const b = await res.json();
    return typeof b.count === 'number' && typeof b.max_model_len === 'number' ? { count: b.count, context: b.max_model_len } : null;
  } catch {
    return null; // the request itself will report what is wrong
  }
}

/**
 * Lowers body.max_tokens to what the context leaves after the prompt. Returns the number it
 * was lowered to (or null when unchanged); throws when no room is left at all.
 */
function fitMaxTokens(body, n, what) {
  const left = n.context - n.count;
  if (left < 1) throw new Error(`${what} has ${n.count} tokens and the model's context is ${n.context}: no room is left for a reply`);
  if (body.max_tokens === undefined || body.max_tokens <= left) return null;
  body.max_tokens = left;
  return left;
}

/**
 * The newest part of the conversation that leaves room for a reply: drops whole turns from the
 * front (a user message and the replies after it). Returns { messages, dropped, n }.
 */
async function fitConversation(messages, wanted) {
  const need = Math.min(wanted ?? MIN_REPLY_TOKENS, MIN_REPLY_TOKENS);
  let msgs = messages;
  let dropped = 0;
  for (;;) {
    const n = await countTokens({ messages: msgs, add_generation_prompt: true });
    if (!n || n.context - n.count >= need) return { messages: msgs, dropped, n };
    const next = msgs.findIndex((m, i) => i > 0 && m.role === 'user');
    if (next < 0) return { messages: msgs, dropped, n }; // only the new message is left
    dropped += next;
    msgs = msgs.slice(next);
  }
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

/** A line in the conversation from the page itself (not a message sent to the model). */
function addNotice(text) {
  const p = document.createElement('p');
  p.className = 'notice';
  p.setAttribute('role', 'status');
  p.textContent = text;
  $('chat-log').append(p);
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
  input.value = '';
  addMessage('user', text);
  // What was said before takes room in the model's context: fit the reply to what is left and,
  // when even a short reply would not fit, leave the oldest turns out (and say so).
  const fit = await fitConversation(history.slice(), body.max_tokens);
  if (fit.dropped > 0) {
    history.splice(0, fit.dropped);
    const gone = [...$('chat-log').querySelectorAll('.msg:not(.dropped)')].slice(0, fit.dropped);
    for (const m of gone) m.classList.add('dropped');
    addNotice(`The ${fit.dropped} oldest message${fit.dropped === 1 ? '' : 's'} no longer fit the model's ${fit.n.context}-token context: left out from now on.`);
  }
  body.messages = history.slice();
  let fitted = null;
  try {
    if (fit.n) fitted = fitMaxTokens(body, fit.n, 'The conversation');
  } catch (e) {
    showError(e.message);
    history.pop();
    $('chat-log').lastElementChild.dataset.state = 'error';
    if (input.value === '') input.value = text;
    return;
  }
  const reply = addMessage('assistant', '');
  const replyText = reply.querySelector('.text');
  const statsLine = document.createElement('p');
  statsLine.className = 'stats';
  reply.append(statsLine);
  reply.dataset.state = 'streaming';
  reply.setAttribute('aria-busy', 'true'); // screen readers read the reply once, when complete
  const note = fitted === null ? '' : ` · max ${fitted} tokens (the context's room)`;
  let content = '';
  try {
    const outcome = await stream(
      '/v1/chat/completions',
      body,
      (t) => {
        // a reply starts at its first word, not with the space or newline the model put first
        const shown = (content + t).replace(/^\s+/, '');
        content += t;
        if (shown !== replyText.textContent) replyText.textContent = shown;
        reply.scrollIntoView({ block: 'end' });
      },
      (s) => (statsLine.textContent = s + note),
    );
    reply.dataset.state = outcome;
    history.push({ role: 'assistant', content: content.trim() });
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
  showError('');
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
  const n = await countTokens({ prompt });
  let fitted = null;
  try {
    if (n) fitted = fitMaxTokens(body, n, 'The prompt');
  } catch (e) {
    showError(e.message);
    return;
  }
  const note = fitted === null ? '' : ` · max ${fitted} tokens (the context's room)`;
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
      (s) => ($('completion-stats').textContent = s + note),
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
    if (!radio.checked) return;
    $('chat-view').hidden = radio.value !== 'chat';
    $('completion-view').hidden = radio.value !== 'completion';
    $('image-view').hidden = radio.value !== 'image';
    $('params').hidden = radio.value === 'image'; // text sampling settings do not apply to pictures
  });
}

// ---------------------------------------------------------------------------------------------
// Image mode: /v1/images/generations with stream: true; a progress event per denoising step,
// then the picture as base64 PNG (shown, and offered as a download).

async function sendImage() {
  showError('');
  const prompt = $('image-prompt').value.trim();
  if (!prompt) return showError('Write a prompt first.');
  let body;
  try {
    body = { model: imageModel.id, prompt, stream: true, response_format: 'b64_json' };
    const neg = $('image-negative').value.trim();
    if (neg) body.negative_prompt = neg;
    body.steps = numberField('image-steps', 'Steps');
    body.guidance_scale = numberField('image-guidance', 'Guidance');
    const seed = numberField('image-seed', 'Seed');
    if (seed !== undefined) body.seed = seed;
    const size = $('image-size').value.trim();
    if (size) body.size = size;
    if ($('image-scheduler').value) body.scheduler = $('image-scheduler').value;
  } catch (e) {
    return showError(e.message);
  }
  controller = new AbortController();
  $('image-send').disabled = true;
  $('image-stop').disabled = false;
  $('image-progress').value = 0;
  $('image-status').textContent = 'Waiting for the image model…';
  try {
    const res = await fetch('/v1/images/generations', { method: 'POST', headers: headers(), body: JSON.stringify(body), signal: controller.signal });
    if (res.status === 401) return askForKey('The server asked for an API key.');
    if (!res.ok) throw new Error(await errorText(res));
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += value;
      let cut;
      while ((cut = buf.indexOf('\n\n')) >= 0) {
        const line = buf.slice(0, cut).trim();
        buf = buf.slice(cut + 2);
        if (!line.startsWith('data: ') || line === 'data: [DONE]') continue;
        const ev = JSON.parse(line.slice(6));
        if (ev.error) throw new Error(ev.error.message);
        if (ev.type === 'image_generation.progress') {
          $('image-progress').value = ev.step / ev.total;
          $('image-status').textContent = `Step ${ev.step} of ${ev.total} (${(ev.elapsed_ms / 1000 / ev.step).toFixed(2)} s/step)`;
        } else if (ev.type === 'image_generation.completed') {
          const url = `data:image/png;base64,${ev.b64_json}`;
          $('image-output').src = url;
          $('image-output').alt = prompt;
          $('image-download').href = url;
          $('image-download').download = `slipstream-${ev.seed}.png`;
          $('image-caption').textContent = `${ev.size}, seed ${ev.seed}`;
          $('image-figure').hidden = false;
          $('image-progress').value = 1;
          $('image-status').textContent = 'Done.';
        }
      }
    }
  } catch (e) {
    if (e.name === 'AbortError') $('image-status').textContent = 'Stopped.';
    else {
      $('image-status').textContent = '';
      showError(e.message);
    }
  } finally {
    controller = null;
    $('image-send').disabled = false;
    $('image-stop').disabled = true;
  }
}

$('image-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sendImage();
});
$('image-stop').addEventListener('click', stop);

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
