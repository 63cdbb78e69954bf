// The clients' report page: reads the report API of its own origin and draws with inline SVG.
// Text from the API is only ever set as textContent or attribute values, never parsed as HTML.
'use strict';
(function () {
  const TOKEN_KEY = 'freightcast.reports.token';
  const SVG = 'http://www.w3.org/2000/svg';
  const TOP_VALUES = 12;
  // Windows offered, in hours, as long as the longest bucket retention holds them.
  const WINDOWS = [[24, 'last 24 hours'], [168, 'last 7 days'], [720, 'last 30 days'], [2160, 'last 90 days']];
  const $ = (id) => document.getElementById(id);

  let describe = null;
  // The server's clock, taken from the last answer: a window ends there rather than at the
  // browser's clock, which may be off.
  let serverTo = null;
  let generation = 0;

  class APIError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  async function api(path, params) {
    const query = new URLSearchParams(params || {}).toString();
    const headers = { Accept: 'application/json' };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = 'Bearer ' + token;
    let resp;
    try {
      resp = await fetch(path + (query ? '?' + query : ''), { headers, cache: 'no-store', credentials: 'omit' });
    } catch (e) {
      throw new APIError(0, 'The report API did not answer: ' + e.message);
    }
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const why = body && typeof body.error === 'string' ? body.error : resp.statusText;
      throw new APIError(resp.status, 'The report API answered ' + resp.status + ': ' + why);
    }
    if (body === null || typeof body !== 'object') {
      throw new APIError(resp.status, 'The report API answered something that is not JSON.');
    }
    if (typeof body.to === 'string') serverTo = new Date(body.to);
    return body;
  }

  function status(text) { $('status').textContent = text; }

  function showError(text) {
    $('error').textContent = text;
    $('error').hidden = !text;
  }

  function fail(e) {
    if (e instanceof APIError && e.status === 401) {
      // Nothing of the previous token's reports stays in the page.
      $('reports').hidden = true;
      for (const id of ['bars', 'trend', 'bars-note']) $(id).replaceChildren();
      $('riskiest').tBodies[0].replaceChildren();
      $('token-form').hidden = false;
      $('forget').hidden = true;
      status('');
      showError(sessionStorage.getItem(TOKEN_KEY) ? 'This token is not accepted: ' + e.message : '');
      $('token').focus();
      return;
    }
    status('');
    showError(e instanceof APIError ? e.message : 'The page failed: ' + String(e && e.message || e));
  }

  function fmt(x) { return typeof x === 'number' && isFinite(x) ? x.toFixed(3) : '–'; }
  function when(s) { const d = new Date(s); return isNaN(d) ? String(s) : d.toISOString().slice(0, 16).replace('T', ' ') + ' UTC'; }

  // hours parses a Go duration such as "2160h" or "1h30m".
  function hours(d) {
    let total = 0;
    const re = /(\d+(?:\.\d+)?)(h|m|s)/g;
    let m;
    while ((m = re.exec(String(d))) !== null) total += parseFloat(m[1]) / { h: 1, m: 60, s: 3600 }[m[2]];
    return total;
  }

  function fillSelect(sel, options) {
    const keep = sel.value;
    sel.replaceChildren(...options.map(([value, label]) => el('option', { value: String(value) }, label)));
    if (options.some(([v]) => String(v) === keep)) sel.value = keep;
  }

  function windowParams() {
    const h = Number($('window').value);
    const p = { output: $('output').value };
    if (h !== 24 && serverTo) {
      p.to = serverTo.toISOString().replace(/\.\d+Z$/, 'Z');
      p.from = new Date(serverTo.getTime() - h * 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
    }
    return p;
  }

  async function start() {
    showError('');
    status('Loading…');
    try {
      describe = await api('/v1/reports:describe');
    } catch (e) {
      fail(e);
      return;
    }
    $('token-form').hidden = true;
    $('reports').hidden = false;
    $('forget').hidden = !sessionStorage.getItem(TOKEN_KEY);
    const longest = Math.max(0, ...(describe.buckets || []).map((b) => hours(b.retention)));
    fillSelect($('dimension'), (describe.dimensions || []).map((d) => [d, d]));
    fillSelect($('output'), (describe.outputs || []).map((o) => [o, o]));
    fillSelect($('window'), WINDOWS.filter(([h], i) => i === 0 || h <= longest));
    await refresh();
  }

  async function refresh() {
    const mine = ++generation;
    showError('');
    status('Loading…');
    const dim = $('dimension').value;
    try {
      const [summary, risky] = await Promise.all([
        api('/v1/reports/' + encodeURIComponent(dim), Object.assign({ top: TOP_VALUES }, windowParams())),
        api('/v1/reports:riskiest', (({ from, to }) => (from ? { from, to } : {}))(windowParams())),
      ]);
      if (mine !== generation) return;
      drawBars(summary);
      drawRiskiest(risky);
      fillSelect($('value'), summary.values.map((v) => [v.value, v.value]));
      await refreshTrend(mine);
    } catch (e) {
      if (mine === generation) fail(e);
    }
  }

  async function refreshTrend(mine) {
    const dim = $('dimension').value;
    const value = $('value').value;
    markSelected(value);
    if (!value) {
      $('trend').replaceChildren(el('p', { class: 'hint' }, 'No values in this window.'));
      status('');
      return;
    }
    const trend = await api('/v1/reports/' + encodeURIComponent(dim) + '/' + encodeURIComponent(value), windowParams());
    if (mine !== generation) return;
    drawTrend(trend);
    status('Updated ' + when(new Date().toISOString()) + '.');
  }

  function markSelected(value) {
    for (const g of document.querySelectorAll('#bars .bar-row')) {
      g.classList.toggle('selected', g.getAttribute('data-value') === value);
    }
  }

  function drawBars(s) {
    $('bars-dimension').textContent = s.dimension;
    const values = s.values || [];
    const row = 24, left = 160, right = 70, width = 900, top = 8;
    const height = top + Math.max(1, values.length) * row + 24;
    const max = Math.max(describe.threshold || 0, ...values.map((v) => v.mean)) || 1;
    const scale = (x) => Math.max(0, x) / max * (width - left - right);
    const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-dimension': s.dimension, 'data-bucket': s.bucket,
      'aria-label': `mean ${s.output} by ${s.dimension}` });
    values.forEach((v, i) => {
      const y = top + i * row;
      const g = svg('g', { class: 'bar-row', 'data-value': v.value });
      g.appendChild(svg('title', {}, `${v.value}: mean ${fmt(v.mean)}, p90 ${fmt(v.p90)}, ${v.count} shipments, ${v.aboveThreshold} at or above the threshold`));
      g.appendChild(svg('text', { class: 'bar-label', x: left - 8, y: y + row / 2 + 4, 'text-anchor': 'end' }, v.value));
      g.appendChild(svg('rect', { class: 'bar', x: left, y: y + 3, width: Math.max(1, scale(v.mean)), height: row - 6, fill: '#d9480f' }));
      g.appendChild(svg('text', { class: 'bar-value', x: left + scale(v.mean) + 6, y: y + row / 2 + 4 }, fmt(v.mean)));
      g.addEventListener('click', () => {
        $('value').value = v.value;
        refreshTrend(generation).catch(fail);
      });
      chart.appendChild(g);
    });
    const axisY = top + Math.max(1, values.length) * row;
    chart.appendChild(svg('line', { class: 'axis', x1: left, x2: width - right, y1: axisY, y2: axisY }));
    if (describe.threshold > 0) {
      const x = left + scale(describe.threshold);
      chart.appendChild(svg('line', { class: 'threshold', x1: x, x2: x, y1: top, y2: axisY }));
      chart.appendChild(svg('text', { x, y: axisY + 16, 'text-anchor': 'middle' }, 'threshold ' + describe.threshold));
    }
    if (values.length === 0) chart.appendChild(svg('text', { x: left, y: top + 16 }, 'No shipments in this window.'));
    $('bars').replaceChildren(chart);
    const notes = [`${when(s.from)} to ${when(s.to)}, buckets of ${s.bucket}.`];
    if (s.truncated) notes.push(`Showing the top ${values.length} values.`);
    if (s.otherValues > 0) notes.push(`${s.otherValues} further values are counted together as "other".`);
    $('bars-note').textContent = notes.join(' ');
  }

  function drawTrend(t) {
    const points = t.points || [];
    const width = 900, height = 260, left = 50, right = 20, top = 10, bottom = 30;
    const t0 = new Date(t.from).getTime(), t1 = new Date(t.to).getTime();
    const max = Math.max(describe.threshold || 0, ...points.map((p) => p.p90), ...points.map((p) => p.mean)) || 1;
    const x = (s) => left + (new Date(s).getTime() - t0) / Math.max(1, t1 - t0) * (width - left - right);
    const y = (v) => top + (1 - v / max) * (height - top - bottom);
    const chart = svg('svg', { viewBox: `0 0 ${width} ${height}`, role: 'img', 'data-value': t.value, 'data-bucket': t.bucket,
      'aria-label': `${t.output} of ${t.dimension} ${t.value} over time` });
    chart.appendChild(svg('line', { class: 'axis', x1: left, x2: width - right, y1: y(0), y2: y(0) }));
    chart.appendChild(svg('line', { class: 'axis', x1: left, x2: left, y1: top, y2: y(0) }));
    chart.appendChild(svg('text', { x: left - 6, y: y(0) + 4, 'text-anchor': 'end' }, '0'));
    chart.appendChild(svg('text', { x: left - 6, y: y(max) + 4, 'text-anchor': 'end' }, fmt(max)));
    chart.appendChild(svg('text', { x: left, y: height - 8 }, when(t.from)));
    chart.appendChild(svg('text', { x: width - right, y: height - 8, 'text-anchor': 'end' }, when(t.to)));
    if (describe.threshold > 0) {
      chart.appendChild(svg('line', { class: 'threshold', x1: left, x2: width - right, y1: y(describe.threshold), y2: y(describe.threshold) }));
    }
    for (const [key, cls] of [['p90', 'line-p90'], ['mean', 'line-mean']]) {
      const coords = points.map((p) => `${x(p.start).toFixed(1)},${y(p[key]).toFixed(1)}`);
      chart.appendChild(svg('polyline', { class: cls, points: coords.join(' ') }));
      if (points.length === 1) chart.appendChild(svg('circle', { class: cls, cx: x(points[0].start), cy: y(points[0][key]), r: 3 }));
    }
    if (points.length === 0) chart.appendChild(svg('text', { x: left + 10, y: top + 20 }, 'No shipments in this window.'));
    $('trend').replaceChildren(chart);
  }

  function drawRiskiest(r) {
    const dims = describe.dimensions || [];
    const head = el('tr');
    for (const h of ['Shipment', 'Risk', 'Predicted at', ...dims]) head.appendChild(el('th', { scope: 'col' }, h));
    $('riskiest').tHead.replaceChildren(head);
    const rows = (r.shipments || []).map((s) => {
      const tr = el('tr', { 'data-id': s.id });
      tr.appendChild(el('td', {}, s.id));
      tr.appendChild(el('td', { class: 'num' }, fmt(s.risk)));
      tr.appendChild(el('td', {}, when(s.predictedAt)));
      for (const d of dims) tr.appendChild(el('td', {}, (s.dimensions || {})[d] || ''));
      return tr;
    });
    if (rows.length === 0) {
      const tr = el('tr');
      tr.appendChild(el('td', { colspan: String(3 + dims.length), class: 'hint' }, 'No shipments in this window.'));
      rows.push(tr);
    }
    $('riskiest').tBodies[0].replaceChildren(...rows);
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const token = $('token').value.trim();
    if (!token) return;
    sessionStorage.setItem(TOKEN_KEY, token);
    $('token').value = '';
    start();
  });
  $('forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    start();
  });
  for (const id of ['dimension', 'window', 'output']) $(id).addEventListener('change', () => refresh());
  $('value').addEventListener('change', () => refreshTrend(generation).catch(fail));
  $('controls').addEventListener('submit', (ev) => ev.preventDefault());
  start();
})();
