// Grove dashboard: the node's supervision trees, restart timeline, processes and figures,
// live. Talks to the node's HTTP endpoint: /api/<verb> answers the debug console's JSON
// envelope (docs/console.md) and /api/stream streams events (docs/events.md) as SSE.
// No dependencies; all data reaches the DOM through textContent or attributes.
'use strict';

const WINDOW_MS = 5 * 60 * 1000; // timeline and figures keep the last 5 minutes
const POLL_MS = 2000; // ps, stats, detail
const TREE_MS = 5000; // tree refetch (restart windows decay)
const TREE_DEBOUNCE_MS = 200;
const STREAM_SILENCE_MS = 60000; // nothing at all (not even keep-alives): reconnect
const TOKEN_KEY = 'grove.dashboard.token';
const THEME_KEY = 'grove.dashboard.theme';
const SVG_NS = 'http://www.w3.org/2000/svg';

const TREE_EVENT_KINDS = new Set([
  'progress', 'child_terminated', 'start_error', 'shutdown_error', 'intensity_reached', 'application',
]);
const TIMELINE_KINDS = new Set(['child_terminated', 'progress', 'intensity_reached', 'start_error']);

const state = {
  authPending: false,
  suspended: new Set(), // pids this page suspended (the node does not report it)
  tree: { rows: new Map(), pids: new Map(), rendered: false, inflight: false, again: false, debounce: 0 },
  timeline: { events: new Map(), lanes: [], treeLanes: [], skews: [], skew: 0, origin: 0, scale: 0, redraw: 0 },
  ps: { sort: 'mailbox', rows: new Map(), inflight: false, again: false },
  stats: { samples: [], inflight: false, node: '' },
  detail: { pid: null, inflight: false, last: '' },
  stream: { ctrl: null, backoff: 1000, resync: false, retry: 0, lastData: 0 },
};

// ---------------------------------------------------------------- DOM helpers

const $ = (selector) => document.querySelector(selector);

// el('td', {class: 'x', text: 'y', 'data-pid': p}, child...): attributes by setAttribute.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  node.append(...children.filter((c) => c != null));
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  return node;
}

function setAttrs(node, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === 'text') node.textContent = String(value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
}

const visible = () => document.visibilityState === 'visible';

function storageGet(store, key) {
  try { return store.getItem(key); } catch { return null; }
}

function storageSet(store, key, value) {
  try { store.setItem(key, value); } catch { /* private mode: keep it for this page only */ }
}

// ---------------------------------------------------------------- formatting

const intFormat = new Intl.NumberFormat('en-US');
const compactFormat = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

const fmtInt = (n) => (Number.isFinite(n) ? intFormat.format(n) : '-');
const fmtCompact = (n) => (Number.isFinite(n) ? compactFormat.format(n) : '-');

function fmtBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes <= 0) return '-';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(bytes < 10240 ? 1 : 0)} KiB`;
  return `${(bytes / 1048576).toFixed(1)} MiB`;
}

function fmtMicros(us) {
  if (!Number.isFinite(us)) return '-';
  if (us < 1000) return `${us}us`;
  if (us < 1e6) return `${(us / 1000).toFixed(1)}ms`;
  return `${(us / 1e6).toFixed(1)}s`;
}

function fmtClock(ms, withMillis = false) {
  const d = new Date(ms);
  const hms = d.toLocaleTimeString('en-GB', { hour12: false });
  return withMillis ? `${hms}.${String(d.getMilliseconds()).padStart(3, '0')}` : hms;
}

// running, waiting, runnable: green; restarting, suspended: yellow; stopped, dead, exiting: red.
function statusClass(status) {
  if (['running', 'waiting', 'runnable'].includes(status)) return 'st st-good';
  if (['restarting', 'suspended'].includes(status)) return 'st st-warn';
  if (['stopped', 'dead', 'exiting'].includes(status)) return 'st st-bad';
  return 'st st-unknown';
}

function statusBadge(status, pid) {
  const badge = el('span', { class: statusClass(status), text: status });
  if (!pid || !state.suspended.has(pid)) return [badge];
  return [badge, el('span', { class: 'st st-warn badge-suspended', title: 'suspended from this page', text: 'suspended' })];
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function authHeaders(extra = {}) {
  const token = storageGet(sessionStorage, TOKEN_KEY);
  return token ? { ...extra, Authorization: `Bearer ${token}` } : extra;
}

async function envelopeOf(response) {
  try {
    return await response.json();
  } catch {
    return { ok: false, error: `HTTP ${response.status}: the answer is not JSON` };
  }
}

// GET /api/<verb>?args=... ; resolves to the envelope's result, rejects with its error.
async function api(verb, args = '') {
  const query = args ? `?args=${encodeURIComponent(args)}` : '';
  return request(`/api/${verb}${query}`, { headers: authHeaders() });
}

// POST /api/<verb> with {"args": ...}: the commands that change something.
async function post(verb, args) {
  return request(`/api/${verb}`, {
    method: 'POST',
    headers: authHeaders({ 'Content-Type': 'application/json' }),
    body: JSON.stringify({ args }),
  });
}

async function request(url, init) {
  const response = await fetch(url, { cache: 'no-store', ...init });
  const envelope = await envelopeOf(response);
  if (response.status === 401) {
    askToken(envelope.error);
    throw new ApiError('a token is needed', 401);
  }
  if (!envelope.ok) throw new ApiError(envelope.error || `HTTP ${response.status}`, response.status);
  return envelope.result;
}

// ---------------------------------------------------------------- token

function askToken(reason) {
  if (state.authPending) return;
  state.authPending = true;
  const hadToken = Boolean(storageGet(sessionStorage, TOKEN_KEY));
  $('#token-msg').textContent = hadToken
    ? `The node refused the token${reason ? ` (${reason})` : ''}. Enter it again.`
    : "This node's console is protected by a token.";
  $('#auth').hidden = false;
  $('#token-input').focus();
  setConn('reconnecting');
}

function initAuth() {
  $('#token-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const token = $('#token-input').value.trim();
    if (!token) return;
    storageSet(sessionStorage, TOKEN_KEY, token);
    $('#token-input').value = '';
    $('#auth').hidden = true;
    state.authPending = false;
    refreshEverything();
  });
}

function refreshEverything() {
  refreshTree();
  refreshPs();
  refreshStats();
  refreshDetail();
  loadHistory();
  connectStream();
}

// ---------------------------------------------------------------- theme

function initTheme() {
  const media = matchMedia('(prefers-color-scheme: dark)');
  const button = $('#theme-toggle');
  const apply = () => {
    const theme = storageGet(localStorage, THEME_KEY) || (media.matches ? 'dark' : 'light');
    document.documentElement.dataset.theme = theme;
    button.textContent = theme === 'dark' ? '☀ Light' : '☾ Dark';
    button.title = `Switch to the ${theme === 'dark' ? 'light' : 'dark'} theme`;
  };
  media.addEventListener('change', apply);
  button.addEventListener('click', () => {
    const next = document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark';
    storageSet(localStorage, THEME_KEY, next);
    apply();
  });
  apply();
}

// ---------------------------------------------------------------- status line and connection

let statusTimer = 0;

function say(text, kind = 'ok') {
  const line = $('#status');
  line.textContent = `${fmtClock(Date.now())}  ${text}`;
  line.dataset.kind = kind;
  line.classList.remove('faded');
  clearTimeout(statusTimer);
  statusTimer = setTimeout(() => line.classList.add('faded'), 8000);
}

function setConn(connState) {
  const conn = $('#conn');
  conn.dataset.state = connState;
  conn.textContent = connState;
}

function setNodeName(name) {
  if (!name || name === state.stats.node) return;
  state.stats.node = name;
  $('#node-name').textContent = name;
  document.title = `Grove · ${name}`;
}

// ---------------------------------------------------------------- confirm and actions

function confirmAction(text, okLabel) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = text;
  $('#confirm-ok').textContent = okLabel;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
    dialog.showModal();
    $('#confirm-cancel').focus();
  });
}

// What each action asks, for `target` (a path or a pid) described as `name`.
function confirmText(action, target, name, { root = false, stopped = false } = {}) {
  switch (action) {
    case 'kill':
      return root
        ? `Kill the top supervisor of application ${name}?\nThis ends the application; for a permanent application it stops the node.`
        : `Kill ${name}?\nThis sends the untrappable kill exit signal; its supervisor restarts it as its restart type says.`;
    case 'restart':
      return stopped
        ? `Restart the stopped child ${name}?\n(restart ${target})`
        : `Restart ${name}?\nThe console restarts only a stopped child, so this first terminates it through its supervisor, then restarts it (terminate ${target}, then restart ${target}).`;
    case 'suspend':
      return `Suspend ${name}?\nA suspended GenServer holds every message but system ones until it is resumed; calls to it time out meanwhile.`;
    default:
      return `Resume ${name}?`;
  }
}

// One line for an action's JSON result (docs/console.md, kill / restart / suspend).
function describeResult(verb, result) {
  if (!result || typeof result !== 'object') return `${verb}: ${JSON.stringify(result)}`;
  if (verb === 'kill') return `sent exit signal ${result.reason} to ${result.pid}`;
  if (result.path) return `${result.path} ${result.result}${result.pid ? ` as ${result.pid}` : ''}`;
  if (result.status) return `${result.pid} ${result.status}`;
  return `${verb}: ${JSON.stringify(result)}`;
}

// Confirm, then POST; the outcome goes to the status line. `target` is a path or a pid.
async function runAction(action, target, options = {}) {
  const name = options.label || target;
  const ok = await confirmAction(confirmText(action, target, name, options), action);
  if (!ok) return;
  try {
    let message;
    if (action === 'restart') {
      if (!options.stopped) await post('terminate', target);
      message = describeResult('restart', await post('restart', target));
    } else {
      const result = await post(action, target);
      message = describeResult(action, result);
      noteSuspension(action, result?.pid);
    }
    say(message, 'ok');
  } catch (error) {
    say(`${action} ${name}: ${error.message}`, 'error');
  }
  refreshTreeSoon();
  refreshPs();
  refreshDetail(true);
}

function noteSuspension(action, pid) {
  if (!pid) return;
  if (action === 'suspend') state.suspended.add(pid);
  if (action === 'resume') state.suspended.delete(pid);
}

// ---------------------------------------------------------------- keyed rows

// Updates `container`'s rows in place, keyed, so that hover, focus and clicks survive a refresh.
function syncRows(container, rows, models, keyOf, create, update) {
  const seen = new Set();
  models.forEach((model, index) => {
    const key = keyOf(model);
    seen.add(key);
    let row = rows.get(key);
    if (!row) {
      row = create(model);
      rows.set(key, row);
    }
    update(row, model);
    const at = container.children[index];
    if (at !== row) container.insertBefore(row, at ?? null);
  });
  for (const [key, row] of rows) {
    if (seen.has(key)) continue;
    row.remove();
    rows.delete(key);
  }
}

// ---------------------------------------------------------------- supervision tree

async function refreshTree() {
  const tree = state.tree;
  if (state.authPending) return;
  if (tree.inflight) {
    tree.again = true;
    return;
  }
  tree.inflight = true;
  try {
    renderTree(await api('tree'));
  } catch (error) {
    if (error.status !== 401) showMessage('#tree-msg', `tree: ${error.message}`, true);
  } finally {
    tree.inflight = false;
    if (tree.again) {
      tree.again = false;
      refreshTree();
    }
  }
}

// Coalesces bursts of supervisor events: one refetch at most 200 ms after the first.
function refreshTreeSoon() {
  if (state.tree.debounce) return;
  state.tree.debounce = setTimeout(() => {
    state.tree.debounce = 0;
    refreshTree();
  }, TREE_DEBOUNCE_MS);
}

function showMessage(selector, text, isError = false) {
  const msg = $(selector);
  msg.hidden = !text;
  msg.textContent = text || '';
  msg.classList.toggle('error', isError);
}

// The tree JSON (docs/console.md#tree) as a flat list of rows, depth first.
function flattenTree(roots) {
  const rows = [];
  const walk = (node, path, depth, parent) => {
    rows.push(treeRowModel(node, path, depth, parent));
    for (const child of node.children ?? []) {
      // A dynamic supervisor's children are addressed by pid: app/jobs/<1.7.1>.
      const segment = node.type === 'dynamic_supervisor' && child.pid ? child.pid : child.id;
      walk(child, `${path}/${segment}`, depth + 1, node);
    }
  };
  for (const root of roots) walk(root, root.id, 0, null);
  return rows;
}

function treeRowModel(node, path, depth, parent) {
  const isSupervisor = Array.isArray(node.children) || node.type !== 'worker';
  const windowed = Number.isFinite(node.intensity);
  const restarts = depth === 0 ? node.restarts ?? 0 : node.child_restarts ?? node.restarts ?? 0;
  return {
    path,
    depth,
    id: node.id,
    pid: node.pid ?? '',
    root: depth === 0,
    supervisor: isSupervisor,
    running: Array.isArray(node.children),
    dynamicChild: parent?.type === 'dynamic_supervisor',
    type: typeText(node, depth),
    status: node.error ? 'unknown' : node.status ?? 'unknown',
    restarts,
    restartsText: windowed ? `${node.restarts}/${node.intensity} in ${node.period_s}s` : String(restarts),
    ownRestarts: windowed && depth > 0 ? restarts : 0,
    heat: windowed ? restartHeat(node.restarts, node.intensity) : '',
    lastExit: node.error ?? node.last_exit ?? '',
  };
}

function typeText(node, depth) {
  if (node.type === 'dynamic_supervisor') return 'dynamic_supervisor';
  if (node.strategy) return node.strategy;
  if (depth === 0 && !node.type) return 'application';
  return node.type ?? 'supervisor';
}

function restartHeat(restarts, intensity) {
  if (!restarts) return '';
  return restarts >= intensity ? 'hot-bad' : restarts * 2 >= intensity ? 'hot-warn' : '';
}

function renderTree(roots) {
  const tree = state.tree;
  const models = flattenTree(roots);
  const flashes = [];
  for (const model of models) {
    const before = tree.pids.get(model.path);
    if (tree.rendered && before !== model.pid) flashes.push(model.path);
  }
  syncRows($('#tree-body'), tree.rows, models, (m) => m.path, createTreeRow, updateTreeRow);
  tree.pids = new Map(models.map((m) => [m.path, m.pid]));
  for (const path of flashes) flashRow(tree.rows.get(path));
  showMessage('#tree-msg', models.length ? '' : 'no applications');
  setTimelineLanes(models.filter((m) => m.running).map((m) => m.path));
  if (!tree.rendered) {
    tree.rendered = true;
    document.body.dataset.ready = '1';
  }
}

function createTreeRow(model) {
  const row = el('tr', { class: 'tree-row' },
    el('td', { class: 'c-id' }),
    el('td', { class: 'c-pid' }),
    el('td', { class: 'c-type' }),
    el('td', { class: 'c-status' }),
    el('td', { class: 'c-restarts num' }),
    el('td', { class: 'c-exit' }),
    el('td', { class: 'c-actions' }));
  const actions = model.root ? ['kill', 'suspend', 'resume'] : ['kill', 'restart', 'suspend', 'resume'];
  for (const action of actions) {
    row.lastChild.append(el('button', { type: 'button', class: 'act', 'data-action': action, text: ACTION_ICONS[action] }));
  }
  return row;
}

// Compact glyphs for the tree's buttons; each also has a title and an aria-label.
const ACTION_ICONS = { kill: '✕', restart: '↻', suspend: '❚❚', resume: '▶' };

function updateTreeRow(row, m) {
  row.className = `tree-row${m.root ? ' root' : ''}${m.supervisor ? ' sup' : ''}${row.classList.contains('flash') ? ' flash' : ''}`;
  setAttrs(row, { 'data-path': m.path, 'data-status': m.status, 'data-pid': m.pid, 'data-restarts': m.restarts });
  const [idCell, pidCell, typeCell, statusCell, restartsCell, exitCell, actionsCell] = row.children;

  idCell.textContent = m.id;
  idCell.title = m.path;
  idCell.style.paddingLeft = `${8 + m.depth * 18}px`;
  pidCell.replaceChildren(m.pid ? el('button', { type: 'button', class: 'pid-link', title: 'details', text: m.pid }) : '-');
  typeCell.textContent = m.type;
  statusCell.replaceChildren(...statusBadge(m.status, m.pid));
  restartsCell.className = `c-restarts num ${m.heat}`;
  restartsCell.textContent = m.restartsText;
  if (m.ownRestarts) restartsCell.append(el('span', { class: 'muted', text: ` ↻${m.ownRestarts}` }));
  restartsCell.title = m.restartsText.includes('/')
    ? 'restarts in the current window / intensity' + (m.ownRestarts ? `; itself restarted ${m.ownRestarts} times` : '')
    : 'restarts in the supervisor\'s current window';
  exitCell.textContent = m.lastExit;
  exitCell.title = m.lastExit;

  for (const button of actionsCell.children) {
    const action = button.dataset.action;
    const noRestart = action === 'restart' && m.dynamicChild;
    button.disabled = noRestart || (action !== 'restart' && !m.pid);
    button.title = noRestart
      ? "a dynamic supervisor's children are not restarted by path: kill it, or start a new one"
      : `${action} ${m.path}`;
    button.setAttribute('aria-label', `${action} ${m.path}`);
  }
}

// Restarts the ~1.5 s highlight (CSS .flash), unless it just started.
function flashRow(row) {
  if (!row) return;
  const now = performance.now();
  if (row.classList.contains('flash') && now - (row.flashedAt ?? 0) < 400) return;
  row.flashedAt = now;
  row.classList.remove('flash');
  void row.offsetWidth; // restart the animation
  row.classList.add('flash');
}

function flashChild(event) {
  const body = $('#tree-body');
  if (event.supervisor && event.child) flashRow(state.tree.rows.get(`${event.supervisor}/${event.child}`));
  if (event.old_pid) {
    for (const row of body.querySelectorAll('.tree-row')) {
      if (row.dataset.pid === event.old_pid) flashRow(row);
    }
  }
}

function initTree() {
  const body = $('#tree-body');
  body.addEventListener('click', (event) => {
    const row = event.target.closest('.tree-row');
    if (!row) return;
    if (event.target.closest('.pid-link')) {
      openDetail(row.dataset.pid);
      return;
    }
    const button = event.target.closest('button[data-action]');
    if (!button || button.disabled) return;
    const { path, pid, status } = row.dataset;
    const root = row.classList.contains('root');
    runAction(button.dataset.action, path, {
      root,
      stopped: status === 'stopped',
      label: pid ? `${path} (${pid})` : path,
    });
  });
  body.addEventListener('animationend', (event) => {
    event.target.closest('.tree-row')?.classList.remove('flash');
  });
}

// ---------------------------------------------------------------- restart timeline

// Node time: browser time corrected by the clock skew seen on live events.
const nodeNow = () => Date.now() - state.timeline.skew;

function noteSkew(event) {
  const t = Date.parse(event.time);
  if (!Number.isFinite(t)) return;
  const tl = state.timeline;
  tl.skews.push(Date.now() - t);
  if (tl.skews.length > 20) tl.skews.shift();
  const least = Math.min(...tl.skews); // delivery delay only adds: the least is the skew
  const skew = Math.abs(least) < 1500 ? 0 : least;
  if (skew !== tl.skew) {
    tl.skew = skew;
    scheduleTimeline();
  }
}

function addTimelineEvent(event) {
  if (!TIMELINE_KINDS.has(event.kind)) return false;
  const t = Date.parse(event.time);
  if (!Number.isFinite(t) || t < nodeNow() - WINDOW_MS) return false;
  const key = `${event.seq}@${event.time}`;
  if (state.timeline.events.has(key)) return false;
  state.timeline.events.set(key, { ...event, t });
  return true;
}

async function loadHistory() {
  if (state.authPending) return;
  try {
    const events = await api('events', '--last 256');
    let added = false;
    for (const event of events) added = addTimelineEvent(event) || added;
    if (added) scheduleTimeline();
  } catch (error) {
    if (error.status !== 401) say(`events: ${error.message}`, 'error');
  }
}

function setTimelineLanes(lanes) {
  const tl = state.timeline;
  if (lanes.join('\n') === tl.treeLanes.join('\n')) return;
  tl.treeLanes = lanes;
  scheduleTimeline();
}

// Lanes: the running supervisors in tree order, then any other supervisor with events.
function timelineLanes(events) {
  const lanes = [...state.timeline.treeLanes];
  for (const event of events) {
    const lane = event.supervisor || '?';
    if (!lanes.includes(lane)) lanes.push(lane);
  }
  return lanes;
}

function scheduleTimeline() {
  const tl = state.timeline;
  if (!tl.redraw) tl.redraw = requestAnimationFrame(() => { tl.redraw = 0; drawTimeline(); });
}

// Full redraw: lanes, axis and marks. Between redraws, tickTimeline slides the marks.
function drawTimeline() {
  const tl = state.timeline;
  const box = $('#timeline');
  const now = nodeNow();
  for (const [key, event] of tl.events) if (event.t < now - WINDOW_MS - 2000) tl.events.delete(key);
  const events = [...tl.events.values()];
  const lanes = timelineLanes(events);
  const laneH = 22;
  const axisH = 20;
  const width = Math.max(360, box.clientWidth - 16);
  const labelW = Math.min(200, Math.round(width * 0.24));
  const plotW = width - labelW - 10;
  const height = axisH + Math.max(1, lanes.length) * laneH + 2;
  const domainMs = WINDOW_MS + 4000; // a little room on the right for marks at "now"
  tl.origin = now;
  tl.scale = plotW / domainMs;
  tl.plotW = plotW;
  tl.lanes = lanes;

  const chart = svg('svg', { width, height, role: 'img', 'aria-label': 'restart timeline, last 5 minutes' });
  const plot = svg('svg', { x: labelW, y: 0, width: plotW, height, class: 'tl-plot' });
  lanes.forEach((lane, i) => {
    const y = axisH + i * laneH;
    plot.append(svg('rect', { class: i % 2 ? 'tl-lane odd' : 'tl-lane', x: 0, y, width: plotW, height: laneH }));
    const label = svg('text', { class: 'tl-label', x: labelW - 8, y: y + laneH / 2 + 4, 'text-anchor': 'end' });
    label.textContent = lane.length > 26 ? `…${lane.slice(-25)}` : lane;
    label.append(svgTitle(lane));
    chart.append(label);
  });
  const axis = svg('g', { class: 'tl-axis' });
  const marks = svg('g', { class: 'tl-marks' });
  const laneIndex = new Map(lanes.map((lane, i) => [lane, i]));
  for (const event of events.sort((a, b) => a.t - b.t)) {
    const x = (event.t - (now - WINDOW_MS)) * tl.scale;
    const y = axisH + laneIndex.get(event.supervisor || '?') * laneH + laneH / 2;
    marks.append(timelineMark(event, x, y));
  }
  plot.append(axis, marks);
  if (!events.length) {
    const empty = svg('text', { class: 'tl-empty', x: plotW / 2, y: axisH + 15, 'text-anchor': 'middle' });
    empty.textContent = 'no restarts in the last 5 minutes';
    plot.append(empty);
  }
  chart.append(plot);
  box.replaceChildren(chart);
  drawAxis(axis, now, height, axisH);
}

function svgTitle(text) {
  const title = svg('title');
  title.textContent = text;
  return title;
}

// A mark per event: circles for terminations and starts, a triangle for start errors,
// a diamond for an intensity reached.
function timelineMark(event, x, y) {
  const attrs = {
    class: 'tl-mark',
    'data-kind': event.kind,
    'data-child': event.child ?? '',
    'data-supervisor': event.supervisor ?? '',
    'data-key': `${event.seq}@${event.time}`,
  };
  switch (event.kind) {
    case 'child_terminated':
      return svg('circle', { ...attrs, cx: x, cy: y, r: 5 });
    case 'progress':
      return svg('circle', { ...attrs, cx: x, cy: y, r: 3.5 });
    case 'start_error':
      return svg('path', { ...attrs, d: `M${x} ${y - 6} L${x + 6} ${y + 5} L${x - 6} ${y + 5} Z` });
    default:
      return svg('path', { ...attrs, d: `M${x} ${y - 8} L${x + 7} ${y} L${x} ${y + 8} L${x - 7} ${y} Z` });
  }
}

// Minute grid lines and clock labels for a chart whose right edge is `now`.
function drawAxis(axis, now, height, axisH) {
  const tl = state.timeline;
  const shift = (now - tl.origin) * tl.scale;
  const x = (t) => (t - (tl.origin - WINDOW_MS)) * tl.scale - shift;
  const nodes = [];
  for (let t = Math.ceil((now - WINDOW_MS) / 30000) * 30000; t <= now; t += 30000) {
    const major = t % 60000 === 0;
    nodes.push(svg('line', { class: 'tl-grid', x1: x(t), x2: x(t), y1: major ? axisH - 4 : axisH, y2: height }));
    if (major && x(t) > 16 && x(t) < tl.plotW - 16) { // a label cut by the edge would mislead
      const label = svg('text', { class: 'tl-tick', x: x(t), y: axisH - 7, 'text-anchor': 'middle' });
      label.textContent = fmtClock(t).slice(0, 5);
      nodes.push(label);
    }
  }
  axis.replaceChildren(...nodes);
}

// Every second: slide the marks left and move the axis; redraw fully now and then.
function tickTimeline() {
  const tl = state.timeline;
  const box = $('#timeline');
  const marks = box.querySelector('.tl-marks');
  const axis = box.querySelector('.tl-axis');
  const now = nodeNow();
  if (!marks || now - tl.origin > 15000) {
    drawTimeline();
    return;
  }
  marks.setAttribute('transform', `translate(${-(now - tl.origin) * tl.scale} 0)`);
  drawAxis(axis, now, Number(box.firstChild.getAttribute('height')), 20);
}

function showTooltip(mark, pointer) {
  const event = state.timeline.events.get(mark.dataset.key);
  if (!event) return;
  const tip = $('#tooltip');
  const lines = [
    `${event.supervisor ?? '?'} / ${event.child ?? '?'}`,
    event.reason != null ? `reason: ${event.reason}` : null,
    event.old_pid ? `old pid: ${event.old_pid}` : null,
    event.new_pid ? `new pid: ${event.new_pid}` : null,
    Number.isFinite(event.intensity) ? `restarts: ${event.restarts}/${event.intensity} in ${event.period_s}s` : null,
    `time: ${fmtClock(event.t, true)}`,
  ];
  tip.replaceChildren(el('div', { class: 'tt-kind', text: event.kind }),
    ...lines.filter(Boolean).map((line) => el('div', { class: 'tt-line', text: line })));
  tip.hidden = false;
  const left = Math.min(pointer.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
  const top = pointer.clientY + 16 + tip.offsetHeight > window.innerHeight
    ? pointer.clientY - tip.offsetHeight - 10 : pointer.clientY + 16;
  tip.style.left = `${Math.max(4, left)}px`;
  tip.style.top = `${Math.max(4, top)}px`;
}

function initTimeline() {
  const box = $('#timeline');
  const hover = (event) => {
    const mark = event.target.closest?.('.tl-mark');
    if (mark) showTooltip(mark, event);
    else $('#tooltip').hidden = true;
  };
  box.addEventListener('mouseover', hover);
  box.addEventListener('mousemove', hover);
  box.addEventListener('mouseleave', () => { $('#tooltip').hidden = true; });
  new ResizeObserver(() => scheduleTimeline()).observe(box);
  setInterval(tickTimeline, 1000);
}

// ---------------------------------------------------------------- live event stream

// Reads /api/stream (SSE over fetch, so that it can carry the Authorization header).
async function connectStream() {
  const stream = state.stream;
  clearTimeout(stream.retry);
  stream.ctrl?.abort();
  if (state.authPending) return;
  const ctrl = new AbortController();
  stream.ctrl = ctrl;
  stream.lastData = Date.now();
  try {
    const response = await fetch(`/api/stream?args=${encodeURIComponent('--last 0')}`, {
      headers: authHeaders(), cache: 'no-store', signal: ctrl.signal,
    });
    if (response.status === 401) {
      askToken((await envelopeOf(response)).error);
      return; // connectStream runs again once a token is given
    }
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    await readSse(response.body, onStreamMessage);
  } catch {
    // network error, abort, or the node closed the stream: reconnect below
  }
  if (stream.ctrl !== ctrl) return; // replaced by a newer connection
  stream.ctrl = null;
  stream.resync = true; // what happened meanwhile was missed: refetch once connected
  setConn('reconnecting');
  stream.retry = setTimeout(connectStream, stream.backoff);
  stream.backoff = Math.min(stream.backoff * 2, 10000);
}

async function readSse(body, onMessage) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    state.stream.lastData = Date.now();
    buffer += decoder.decode(value, { stream: true }).replace(/\r/g, '');
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const data = sseData(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (data !== null) onMessage(data);
    }
  }
}

// The data of one SSE message, or null for a keep-alive comment.
function sseData(block) {
  const data = block.split('\n').filter((line) => line.startsWith('data:'))
    .map((line) => line.slice(line.startsWith('data: ') ? 6 : 5));
  return data.length ? data.join('\n') : null;
}

function onStreamMessage(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    console.warn('grove dashboard: not JSON on the stream:', text);
    return;
  }
  if ('ok' in message) onStreamAnswer(message);
  else if (message.kind === 'dropped' || (!message.kind && 'dropped' in message)) onDropped(message.dropped);
  else if (message.kind) onEvent(message);
}

// The first message: the answer to `events --follow --last 0`.
function onStreamAnswer(envelope) {
  const stream = state.stream;
  if (!envelope.ok) {
    say(`event stream: ${envelope.error}`, 'error');
    return;
  }
  setConn('live');
  stream.backoff = 1000;
  if (stream.resync) {
    stream.resync = false;
    refreshTree();
    loadHistory();
  }
}

function onDropped(count) {
  say(`the node dropped ${count} events: this page fell behind`, 'warn');
  refreshTreeSoon();
  loadHistory();
}

function onEvent(event) {
  noteSkew(event);
  if (addTimelineEvent(event)) scheduleTimeline();
  if (event.kind === 'child_terminated') flashChild(event);
  if (TREE_EVENT_KINDS.has(event.kind)) refreshTreeSoon();
}

// A stream silent for a minute (no event, no keep-alive) is presumed dead.
function watchStream() {
  setInterval(() => {
    const stream = state.stream;
    if (stream.ctrl && Date.now() - stream.lastData > STREAM_SILENCE_MS) stream.ctrl.abort();
  }, 5000);
}

// ---------------------------------------------------------------- process table

async function refreshPs() {
  const ps = state.ps;
  if (state.authPending || !visible()) return;
  if (ps.inflight) {
    ps.again = true;
    return;
  }
  ps.inflight = true;
  try {
    renderPs(await api('ps', `--sort ${ps.sort} --top 200`));
    showMessage('#ps-msg', '');
  } catch (error) {
    if (error.status !== 401) showMessage('#ps-msg', `ps: ${error.message}`, true);
  } finally {
    ps.inflight = false;
    if (ps.again) {
      ps.again = false;
      refreshPs();
    }
  }
}

function renderPs(processes) {
  syncRows($('#ps-body'), state.ps.rows, processes, (p) => p.pid, createPsRow, updatePsRow);
  $('#ps-count').textContent = `(top ${processes.length} by ${state.ps.sort})`;
}

function createPsRow(p) {
  const cells = ['c-pid mono', 'c-name', 'c-status', 'num', 'num', 'num', 'num', 'num'];
  return el('tr', { class: 'ps-row', 'data-pid': p.pid, tabindex: 0 }, ...cells.map((c) => el('td', { class: c })));
}

function updatePsRow(row, p) {
  const [pidCell, nameCell, statusCell, mailboxCell, inCell, outCell, runningCell, memoryCell] = row.children;
  row.classList.toggle('selected', p.pid === state.detail.pid);
  pidCell.textContent = p.pid;
  nameCell.textContent = p.name || '-';
  nameCell.title = p.name || '';
  statusCell.replaceChildren(...statusBadge(p.status, p.pid));
  mailboxCell.textContent = fmtInt(p.mailbox);
  mailboxCell.className = `num ${p.mailbox >= 1000 ? 'flooded' : p.mailbox >= 10 ? 'busy' : ''}`;
  inCell.textContent = fmtCompact(p.messages_in);
  outCell.textContent = fmtCompact(p.messages_out);
  runningCell.textContent = p.status === 'running' ? fmtMicros(p.running_us) : '-';
  memoryCell.textContent = fmtBytes((p.stack_bytes ?? 0) + (p.mailbox ?? 0) * 64);
}

function setSort(key) {
  state.ps.sort = key;
  for (const th of document.querySelectorAll('#ps th[data-sort]')) {
    if (th.dataset.sort === key) th.setAttribute('aria-sort', 'descending');
    else th.removeAttribute('aria-sort');
  }
}

function initPs() {
  const table = $('#ps');
  for (const th of table.querySelectorAll('th[data-sort]')) th.tabIndex = 0;
  setSort(state.ps.sort);
  const sortFrom = (event) => {
    const th = event.target.closest('th[data-sort]');
    if (!th || th.dataset.sort === state.ps.sort) return;
    setSort(th.dataset.sort);
    refreshPs();
  };
  table.tHead.addEventListener('click', sortFrom);
  table.tHead.addEventListener('keydown', (event) => { if (event.key === 'Enter') sortFrom(event); });
  const open = (event) => {
    const row = event.target.closest('tr.ps-row');
    if (row) openDetail(row.dataset.pid);
  };
  $('#ps-body').addEventListener('click', open);
  $('#ps-body').addEventListener('keydown', (event) => { if (event.key === 'Enter') open(event); });
}

// ---------------------------------------------------------------- detail panel

function openDetail(pid) {
  if (!pid) return;
  state.detail.pid = pid;
  state.detail.last = '';
  $('#detail-title').textContent = pid;
  $('#detail-body').replaceChildren(el('p', { class: 'msg', text: 'loading…' }));
  $('#detail').hidden = false;
  for (const row of state.ps.rows.values()) row.classList.toggle('selected', row.dataset.pid === pid);
  refreshDetail(true);
}

function closeDetail() {
  state.detail.pid = null;
  $('#detail').hidden = true;
  for (const row of state.ps.rows.values()) row.classList.remove('selected');
}

// info and state together; the panel is redrawn only when they changed (keeps a selection).
async function refreshDetail(force = false) {
  const detail = state.detail;
  const pid = detail.pid;
  if (!pid || state.authPending || detail.inflight || (!force && !visible())) return;
  if (force) detail.last = '';
  detail.inflight = true;
  try {
    const [info, st] = await Promise.allSettled([api('info', pid), api('state', pid)]);
    if (detail.pid !== pid) return;
    const snapshot = JSON.stringify([info.value ?? info.reason?.message, st.value ?? st.reason?.message]);
    if (snapshot === detail.last) return;
    detail.last = snapshot;
    renderDetail(pid, info, st);
  } finally {
    detail.inflight = false;
  }
}

function renderDetail(pid, info, st) {
  const body = $('#detail-body');
  const alive = info.status === 'fulfilled';
  const i = info.value ?? {};
  $('#detail-title').textContent = alive && i.name ? `${pid} ${i.name}` : pid;
  const actions = el('div', { class: 'detail-actions' },
    ...['kill', 'suspend', 'resume'].map((action) =>
      el('button', { type: 'button', class: 'act', 'data-action': action, text: action, disabled: !alive })));
  const parts = [actions];
  if (!alive) {
    parts.push(el('p', { class: 'msg error', text: info.reason?.message ?? 'no answer' }));
  } else {
    parts.push(el('h3', { text: 'Process' }), infoList(i));
    if (i.mailbox_peek?.length) {
      parts.push(el('h3', { text: `Mailbox: next ${i.mailbox_peek.length} of ${fmtInt(i.mailbox)}` }),
        el('ol', { class: 'detail-list' }, ...i.mailbox_peek.map((type) => el('li', { text: type }))));
    }
  }
  parts.push(el('h3', { text: 'State (format_status)' }));
  if (st.status === 'fulfilled') {
    parts.push(el('pre', { class: 'detail-pre', text: st.value?.state ?? '' }));
    const recent = st.value?.recent;
    if (Array.isArray(recent) && recent.length) {
      parts.push(el('h3', { text: 'Recent trace' }),
        el('ol', { class: 'detail-list' }, ...recent.map((line) => el('li', { text: line }))));
    }
  } else {
    parts.push(el('pre', { class: 'detail-pre error', text: st.reason?.message ?? 'no answer' }));
  }
  body.replaceChildren(...parts);
}

function infoList(i) {
  const pids = (list) => (list?.length
    ? list.map((p) => el('button', { type: 'button', class: 'pid-link', 'data-pid': p, text: p }))
    : ['-']);
  const status = statusBadge(i.status, i.pid);
  const rows = [
    ['name', [i.name ?? '-']],
    ['label', [i.label || '-']],
    ['form', [i.handler ? 'handler (GenServer or other behaviour)' : 'body']],
    ['status', status],
    ['trap_exit', [String(i.trap_exit)]],
    ['links', pids(i.links)],
    ['monitors', pids(i.monitors)],
    ['monitored_by', pids(i.monitored_by)],
    ['stack', [i.stack_bytes ? fmtBytes(i.stack_bytes) : '- (no stack while idle)']],
    ['scheduler', [i.scheduler >= 0 ? String(i.scheduler) : '-']],
    ['messages', [`${fmtInt(i.messages_in)} in, ${fmtInt(i.messages_out)} out`]],
    ['mailbox', [`${fmtInt(i.mailbox)} queued`]],
  ];
  return el('dl', { class: 'kv' }, ...rows.flatMap(([key, value]) => [el('dt', { text: key }), el('dd', {}, ...value)]));
}

function initDetail() {
  $('#detail-close').addEventListener('click', closeDetail);
  $('#detail-body').addEventListener('click', (event) => {
    const link = event.target.closest('.pid-link');
    if (link) {
      openDetail(link.dataset.pid);
      return;
    }
    const button = event.target.closest('button[data-action]');
    if (button && state.detail.pid) runAction(button.dataset.action, state.detail.pid);
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !$('#confirm').open && !$('#detail').hidden) closeDetail();
  });
}

// ---------------------------------------------------------------- node figures

const FIGURES = [
  { key: 'processes', title: 'Processes', values: (s) => [s.processes], show: fmtInt },
  { key: 'messages', title: 'Messages/s', values: (s) => [s.messages_per_s], show: fmtCompact },
  {
    key: 'utilisation', title: 'Scheduler utilisation', max: 100,
    values: (s) => (Array.isArray(s.utilisation) ? s.utilisation.map((u) => u * 100) : null),
    show: (v) => `${Math.round(v)}%`,
  },
  { key: 'run_queues', title: 'Run queues', values: (s) => s.run_queues, show: fmtInt },
];

async function refreshStats() {
  const stats = state.stats;
  if (state.authPending || !visible() || stats.inflight) return;
  stats.inflight = true;
  try {
    const s = await api('stats');
    setNodeName(s.node);
    stats.samples.push({ t: Date.now(), s });
    while (stats.samples.length && stats.samples[0].t < Date.now() - WINDOW_MS) stats.samples.shift();
    renderFigures();
  } catch (error) {
    if (error.status !== 401) $('#figures .counters').replaceChildren(el('span', { class: 'msg error', text: `stats: ${error.message}` }));
  } finally {
    stats.inflight = false;
  }
}

function initFigures() {
  const box = $('#figures');
  for (const figure of FIGURES) {
    box.append(el('div', { class: 'figure', 'data-figure': figure.key },
      el('div', { class: 'figure-head' },
        el('span', { class: 'figure-title', text: figure.title }),
        el('span', { class: 'figure-value', text: '-' })),
      el('div', { class: 'figure-chart' },
        svg('svg', { viewBox: '0 0 300 42', preserveAspectRatio: 'none', 'aria-hidden': 'true' }),
        el('span', { class: 'figure-scale' }))));
  }
  box.append(el('div', { class: 'counters' }));
}

function renderFigures() {
  const samples = state.stats.samples;
  const latest = samples.at(-1)?.s;
  if (!latest) return;
  for (const figure of FIGURES) {
    const node = $(`#figures [data-figure="${figure.key}"]`);
    const series = samples.map(({ t, s }) => ({ t, v: figure.values(s) }));
    const current = figure.values(latest);
    node.querySelector('.figure-value').textContent = current ? summarise(current, figure.show) : 'not reported';
    const max = figure.max ?? niceMax(Math.max(1, ...series.flatMap((p) => p.v ?? [])));
    node.querySelector('.figure-scale').textContent = `max ${figure.show(max)}`;
    node.querySelector('svg').replaceChildren(...sparklines(series, max));
  }
  const counters = [
    ['schedulers', latest.schedulers],
    ['restarts/min', latest.restarts_last_minute],
    ['crashes', latest.crashes],
    ['events', latest.events],
  ];
  $('#figures .counters').replaceChildren(...counters.map(([label, value]) =>
    el('span', {}, `${label} `, el('strong', { text: fmtInt(value) }))));
}

// One value as is; a few as a list; many as average and maximum.
function summarise(values, show) {
  if (values.length === 1) return show(values[0]);
  if (values.length <= 4) return values.map(show).join(' · ');
  const sum = values.reduce((a, b) => a + b, 0);
  return `avg ${show(sum / values.length)} · max ${show(Math.max(...values))}`;
}

function niceMax(value) {
  const step = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * step).find((v) => v >= value);
}

// Polylines in a 300x42 viewBox, one per series index, over the last 5 minutes.
function sparklines(points, max) {
  const now = Date.now();
  const width = 300;
  const height = 42;
  const count = Math.max(0, ...points.map((p) => p.v?.length ?? 0));
  const lines = [];
  for (let i = 0; i < count; i++) {
    const coords = points.filter((p) => Number.isFinite(p.v?.[i])).map((p) => {
      const x = ((p.t - (now - WINDOW_MS)) / WINDOW_MS) * width;
      const y = height - 2 - (Math.min(p.v[i], max) / max) * (height - 6);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    lines.push(svg('polyline', {
      class: `spark series-${i % 8}`, points: coords.join(' '), 'vector-effect': 'non-scaling-stroke',
    }));
  }
  return lines;
}

// ---------------------------------------------------------------- start

// Runs fn every `ms` after the previous run ended, while the tab is visible.
function every(ms, fn) {
  const run = async () => {
    try {
      if (visible() && !state.authPending) await fn();
    } catch (error) {
      console.error('grove dashboard:', error);
    }
    setTimeout(run, ms);
  };
  setTimeout(run, ms);
}

function start() {
  initTheme();
  initAuth();
  initTree();
  initTimeline();
  initPs();
  initDetail();
  initFigures();
  document.addEventListener('visibilitychange', () => {
    if (!visible() || state.authPending) return;
    refreshTree();
    refreshPs();
    refreshStats();
  });
  refreshTree(); // at once, visible or not: the first tree sets body[data-ready]
  refreshPs();
  refreshStats();
  loadHistory();
  connectStream();
  every(TREE_MS, refreshTree);
  every(POLL_MS, refreshPs);
  every(POLL_MS, refreshStats);
  every(POLL_MS, () => refreshDetail());
  watchStream();
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
