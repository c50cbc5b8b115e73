// The dashboard's script: plain JavaScript, no build step, served by the service itself.
// It follows the event stream (GET api/events/stream, server-sent events), polls the statistics
// (api/events/stats), the consumer lag (/metrics) and Kafka's health, and posts test events.
// Every URL is relative, so the page works wherever the service's root is served. Data from the
// service only ever reaches the page as text (textContent), never as markup.
'use strict';

const TYPES = ['movie', 'user', 'payment'];
const MAX_ROWS = 100;
const WINDOW_SECONDS = 60;
const STATS_EVERY_MS = 2000;
const LAG_EVERY_MS = 3000;
const HEALTH_EVERY_MS = 5000;
const RECONNECT_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';

const $ = (id) => document.getElementById(id);

/** Milliseconds to add to this machine's clock to get the service's (from `Date` headers). */
let serverOffsetMs = 0;
/** The latest statistics, for the chart's line of all events. */
let latestStats = null;
/** Per Unix second, the events of each type the stream brought (by the event's timestamp). */
const perSecond = new Map();
/** Stream ids already shown, so that a replay after a reconnect adds nothing twice. */
const seen = new Set();
const seenOrder = [];

// --- the event stream ------------------------------------------------------------------------

function setStreamState(state, text) {
  const badge = $('stream-state');
  badge.dataset.state = state;
  badge.textContent = `stream: ${text}`;
}

function connect() {
  setStreamState('connecting', 'connecting…');
  const source = new EventSource('api/events/stream');
  source.addEventListener('open', () => setStreamState('live', 'live'));
  source.addEventListener('processed', (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch {
      return;
    }
    onEvent(event);
  });
  source.addEventListener('error', () => {
    // EventSource reconnects by itself, sending Last-Event-ID, unless the service refused the
    // stream (a 503 when too many are open): then it is closed and we start a new one later.
    if (source.readyState === EventSource.CLOSED) {
      setStreamState('closed', `closed, retrying in ${RECONNECT_MS / 1000} s`);
      setTimeout(connect, RECONNECT_MS);
    } else {
      setStreamState('reconnecting', 'reconnecting…');
    }
  });
}

function onEvent(event) {
  const streamId = `${event.topic}-${event.partition}-${event.offset}`;
  if (seen.has(streamId)) return;
  seen.add(streamId);
  seenOrder.push(streamId);
  if (seenOrder.length > 10 * MAX_ROWS) seen.delete(seenOrder.shift());

  addRow(event, streamId);
  const millis = Date.parse(event.timestamp);
  const second = Math.floor((Number.isNaN(millis) ? Date.now() + serverOffsetMs : millis) / 1000);
  if (TYPES.includes(event.type)) {
    const counts = perSecond.get(second) || { movie: 0, user: 0, payment: 0 };
    counts[event.type] += 1;
    perSecond.set(second, counts);
  }
  refreshStatsSoon();
}

function addRow(event, streamId) {
  const row = document.createElement('tr');
  row.dataset.testid = 'event-row';
  row.dataset.eventId = event.id;
  row.dataset.streamId = streamId;
  row.dataset.type = event.type;
  const cells = [
    formatTime(event.timestamp),
    event.type,
    event.action || '—',
    event.id,
    `${event.topic} / ${event.partition} / ${event.offset}`,
    event.key ?? '—',
  ];
  cells.forEach((text, index) => {
    const cell = document.createElement('td');
    if (index === 1) {
      const tag = document.createElement('span');
      tag.className = `tag tag-${TYPES.includes(text) ? text : 'other'}`;
      tag.textContent = text;
      cell.append(tag);
    } else {
      cell.textContent = String(text);
    }
    if (index === 3) {
      cell.className = 'id';
      cell.title = String(text);
    }
    row.append(cell);
  });
  const body = $('events-body');
  body.prepend(row);
  while (body.rows.length > MAX_ROWS) body.deleteRow(-1);
  $('events-empty').hidden = true;
  $('events-count').textContent = `latest ${body.rows.length}, newest first`;
}

function formatTime(timestamp) {
  const date = new Date(timestamp);
  if (Number.isNaN(date.getTime())) return String(timestamp);
  const pad = (n, width = 2) => String(n).padStart(width, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `.${pad(date.getMilliseconds(), 3)}`;
}

// --- statistics: counters, payments, the service's rate ------------------------------------

let statsTimer = null;
let statsDue = 0;

/** Refreshes the statistics in `delay` ms, unless a refresh is due sooner already. */
function scheduleStats(delay) {
  const due = Date.now() + delay;
  if (statsTimer !== null && statsDue <= due) return;
  clearTimeout(statsTimer);
  statsDue = due;
  statsTimer = setTimeout(refreshStats, delay);
}

/** After events arrive, refresh the counters soon rather than at the next poll (at most five
 * times a second however fast events come). */
function refreshStatsSoon() {
  scheduleStats(200);
}

async function refreshStats() {
  statsTimer = null;
  scheduleStats(STATS_EVERY_MS);
  let stats;
  try {
    const response = await fetch('api/events/stats', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    noteServerClock(response);
    stats = await response.json();
  } catch (error) {
    $('rate-total').textContent = `statistics unavailable (${error.message})`;
    return;
  }
  latestStats = stats;
  setCount('count-total', stats.processed_total);
  $('rate-total').textContent = `${stats.events_per_second.toFixed(2)} events/s over the last minute`;
  for (const type of TYPES) {
    const counts = stats.by_type[type] || { total: 0, by_action: {} };
    setCount(`count-${type}`, counts.total);
    const actions = Object.entries(counts.by_action)
      .filter(([, n]) => n > 0)
      .map(([action, n]) => `${action} ${n}`);
    $(`actions-${type}`).textContent = actions.length ? actions.join(' · ') : 'none yet';
  }
  renderPayments(stats.payments);
  drawChart();
}

function setCount(id, value) {
  const element = $(id);
  element.dataset.value = String(value);
  element.textContent = Number(value).toLocaleString('en-US');
}

function noteServerClock(response) {
  const date = Date.parse(response.headers.get('date') || '');
  if (Number.isNaN(date)) return;
  // `Date` has whole seconds: only a clearly different clock is corrected.
  const offset = date - Date.now();
  serverOffsetMs = Math.abs(offset) > 2000 ? offset : 0;
}

function renderPayments(payments) {
  const body = $('payments-body');
  body.replaceChildren();
  for (const [status, totals] of Object.entries(payments)) {
    const row = body.insertRow();
    row.dataset.testid = `payment-${status}`;
    row.dataset.count = String(totals.count);
    row.dataset.amount = String(totals.amount);
    row.insertCell().textContent = status;
    const count = row.insertCell();
    count.className = 'num';
    count.textContent = totals.count.toLocaleString('en-US');
    const amount = row.insertCell();
    amount.className = 'num';
    amount.textContent = totals.amount.toLocaleString('en-US', {
      minimumFractionDigits: 2,
      maximumFractionDigits: 2,
    });
  }
}

// --- the rate chart --------------------------------------------------------------------------

const CHART = { width: 640, height: 180, left: 40, right: 8, top: 10, bottom: 24 };

function svg(name, attributes, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function drawChart() {
  const now = Math.floor((Date.now() + serverOffsetMs) / 1000);
  const first = now - WINDOW_SECONDS + 1;
  for (const second of perSecond.keys()) {
    if (second < first) perSecond.delete(second);
  }
  // The service's line of all events first, so that the per-type lines are drawn over it.
  const series = latestStats ? { all: latestStats.per_second } : {};
  for (const type of TYPES) {
    series[type] = Array.from({ length: WINDOW_SECONDS }, (_, i) => {
      const counts = perSecond.get(first + i);
      return counts ? counts[type] : 0;
    });
  }

  const peak = Math.max(1, ...Object.values(series).flat());
  const top = niceCeiling(peak);
  const plotWidth = CHART.width - CHART.left - CHART.right;
  const plotHeight = CHART.height - CHART.top - CHART.bottom;
  const x = (i) => CHART.left + (i / (WINDOW_SECONDS - 1)) * plotWidth;
  const y = (v) => CHART.top + plotHeight - (v / top) * plotHeight;

  const chart = $('rate-chart');
  chart.replaceChildren();
  for (const value of [0, top / 2, top]) {
    chart.append(svg('line', { class: 'grid', x1: CHART.left, x2: CHART.width - CHART.right, y1: y(value), y2: y(value) }));
    chart.append(svg('text', { class: 'axis', x: CHART.left - 6, y: y(value) + 4, 'text-anchor': 'end' }, formatRate(value)));
  }
  for (const [i, label] of [[0, '−60 s'], [30, '−30 s'], [WINDOW_SECONDS - 1, 'now']]) {
    const anchor = i === 0 ? 'start' : i === WINDOW_SECONDS - 1 ? 'end' : 'middle';
    chart.append(svg('text', { class: 'axis', x: x(i), y: CHART.height - 6, 'text-anchor': anchor }, label));
  }
  for (const [name, values] of Object.entries(series)) {
    const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    chart.append(svg('polyline', { class: `line line-${name}`, points, 'data-testid': `rate-line-${name}` }));
  }

  for (const item of $('rate-legend').children) {
    const name = item.dataset.type;
    const values = series[name] || [];
    const total = values.reduce((sum, v) => sum + v, 0);
    item.dataset.count = String(total);
    const label = name === 'all' ? 'all (service)' : name;
    item.textContent = `${label}: ${total} in the last minute, ${(total / WINDOW_SECONDS).toFixed(2)}/s`;
  }
}

function niceCeiling(value) {
  const magnitude = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((m) => m * magnitude >= value);
  return step * magnitude;
}

function formatRate(value) {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

// --- consumer lag, from the Prometheus text at /metrics --------------------------------------

const LAG_LINE = /^events_service_consumer_lag\{([^}]*)\}\s+(\S+)/;
const LABEL = /(\w+)="((?:[^"\\]|\\.)*)"/g;

async function refreshLag() {
  const note = $('lag-note');
  let text;
  try {
    const response = await fetch('metrics', { cache: 'no-store' });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    text = await response.text();
  } catch (error) {
    note.textContent = `Could not read /metrics (${error.message}).`;
    return;
  }
  const partitions = [];
  for (const line of text.split('\n')) {
    const match = LAG_LINE.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries([...match[1].matchAll(LABEL)].map((m) => [m[1], m[2]]));
    partitions.push({ topic: labels.topic, partition: Number(labels.partition), lag: Number(match[2]) });
  }
  partitions.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);

  const body = $('lag-body');
  body.replaceChildren();
  for (const { topic, partition, lag } of partitions) {
    const row = body.insertRow();
    row.dataset.testid = 'lag-row';
    row.dataset.topic = topic;
    row.dataset.partition = String(partition);
    row.dataset.lag = String(lag);
    row.insertCell().textContent = topic;
    row.insertCell().textContent = String(partition);
    const cell = row.insertCell();
    cell.className = lag > 0 ? 'num behind' : 'num';
    cell.textContent = lag.toLocaleString('en-US');
  }
  note.textContent = partitions.length
    ? `Records not yet committed by the consumers, from /metrics at ${formatTime(new Date())}.`
    : 'No lag reported yet: the consumers report each partition they read every ' +
      'KAFKA_STATISTICS_INTERVAL_MS, once they have committed there.';
}

// --- Kafka's health ---------------------------------------------------------------------------

async function refreshHealth() {
  const badge = $('kafka-state');
  try {
    const response = await fetch('api/events/health', { cache: 'no-store' });
    const health = await response.json();
    const brokers = health.kafka ? health.kafka.brokers : 0;
    badge.dataset.state = health.status ? 'ok' : 'down';
    badge.textContent = health.status
      ? `Kafka: healthy, ${brokers} broker${brokers === 1 ? '' : 's'}`
      : `Kafka: unavailable${health.kafka && health.kafka.last_error ? ` (${health.kafka.last_error})` : ''}`;
  } catch (error) {
    badge.dataset.state = 'down';
    badge.textContent = `Kafka: unknown (${error.message})`;
  }
}

// --- the test-event form ---------------------------------------------------------------------

function selectedFieldset() {
  return document.querySelector(`#send-form fieldset[data-type="${$('send-type').value}"]`);
}

function showFieldsFor() {
  const type = $('send-type').value;
  for (const fieldset of document.querySelectorAll('#send-form fieldset')) {
    const active = fieldset.dataset.type === type;
    fieldset.hidden = !active;
    fieldset.disabled = !active;
  }
}

/** The event as JSON: empty fields are left out, numeric fields sent as numbers. */
function formBody() {
  const body = {};
  for (const field of selectedFieldset().querySelectorAll('input, select')) {
    const value = field.value.trim();
    if (value === '') continue;
    body[field.name] = field.dataset.kind ? Number(value) : value;
  }
  return body;
}

async function sendEvent(submit) {
  submit.preventDefault();
  const type = $('send-type').value;
  const result = $('send-result');
  const button = $('send-button');
  button.disabled = true;
  result.dataset.status = 'sending';
  result.textContent = 'Sending…';
  try {
    const response = await fetch(`api/events/${type}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(formBody()),
    });
    const answer = await response.json().catch(() => ({ error: 'the answer is not JSON' }));
    showAnswer(result, response.status, answer);
  } catch (error) {
    result.dataset.status = 'network';
    result.className = 'error';
    result.textContent = `Not sent: ${error.message}`;
  } finally {
    button.disabled = false;
  }
}

function showAnswer(result, status, answer) {
  result.dataset.status = String(status);
  result.replaceChildren();
  if (status === 201 && answer.event) {
    result.className = 'ok';
    result.dataset.eventId = answer.event.id;
    const line = document.createElement('p');
    line.textContent = `${status}: stored at ${answer.topic} / ${answer.partition} / ${answer.offset}`;
    const id = document.createElement('code');
    id.dataset.testid = 'send-result-id';
    id.textContent = answer.event.id;
    result.append(line, id);
    return;
  }
  result.className = 'error';
  delete result.dataset.eventId;
  const line = document.createElement('p');
  line.textContent = `${status}: ${answer.error || 'failed'}`;
  result.append(line);
  if (Array.isArray(answer.fields) && answer.fields.length) {
    const list = document.createElement('ul');
    for (const { field, message } of answer.fields) {
      const item = document.createElement('li');
      item.dataset.field = field;
      const name = document.createElement('code');
      name.textContent = field;
      item.append(name, ` ${message}`);
      list.append(item);
    }
    result.append(list);
  }
}

// --- start -----------------------------------------------------------------------------------

$('send-type').addEventListener('change', showFieldsFor);
$('send-form').addEventListener('submit', sendEvent);
showFieldsFor();
connect();
refreshStats();
refreshLag();
refreshHealth();
setInterval(drawChart, 1000);
setInterval(refreshLag, LAG_EVERY_MS);
setInterval(refreshHealth, HEALTH_EVERY_MS);
