// The status page's script (package statuspage): it reads api/v1/status, relative to the page,
// once a second and renders it. No framework and no other origin. Every label comes from the
// dictionary the server put in #labels, in the page's language.
//
// Data from the gateway (device and tag names, errors) is only ever set as text, never as HTML.
// After each rendering, body[data-refresh] counts the renderings and body[data-status-ts] holds
// the rendered status's stats.ts: the browser test reads them to know which status it sees.
'use strict';

(() => {
  const REFRESH_MS = 1000;
  const TIMEOUT_MS = 5000;
  // More tags than this in all and the per-device tag tables start closed (phones).
  const OPEN_TAGS_UP_TO = 200;

  const L = JSON.parse(document.getElementById('labels').textContent);
  const lang = document.documentElement.lang || 'en';
  const statusURL = new URL('api/v1/status', document.baseURI);
  const numbers = new Intl.NumberFormat(lang);
  const $ = (sel, root = document) => root.querySelector(sel);

  // t returns the label of key with {name} placeholders replaced from vars.
  function t(key, vars) {
    let s = L[key];
    if (s === undefined) {
      console.error('statuspage: no label', key);
      return key;
    }
    for (const [k, v] of Object.entries(vars || {})) s = s.split('{' + k + '}').join(String(v));
    return s;
  }

  // el builds an element; children are nodes or text (null and undefined are left out).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, v);
    }
    for (const c of children.flat()) {
      if (c !== undefined && c !== null) e.append(c);
    }
    return e;
  }

  // parse reads the status. Integers beyond 2^53 keep their exact digits, as text: a
  // JavaScript number would round a 64-bit counter.
  function parse(text) {
    return JSON.parse(text, (key, value, ctx) => {
      if (typeof value === 'number' && Number.isInteger(value) && !Number.isSafeInteger(value) &&
          ctx && /^-?\d+$/.test(ctx.source)) {
        return ctx.source;
      }
      return value;
    });
  }

  function count(n) {
    return typeof n === 'number' ? numbers.format(n) : (n === undefined || n === null ? '–' : String(n));
  }

  // age is a duration in seconds for a person: tenths while short, then whole units.
  function age(seconds) {
    if (!(seconds > 0)) seconds = 0;
    if (seconds < 10) return t('unit_s', { n: seconds.toFixed(1) });
    if (seconds < 60) return t('unit_s', { n: Math.floor(seconds) });
    const m = Math.floor(seconds / 60);
    if (m < 60) return t('unit_min', { n: m });
    const h = Math.floor(m / 60);
    if (h < 24) return t('unit_h', { n: h }) + ' ' + t('unit_min', { n: m % 60 });
    return t('unit_d', { n: Math.floor(h / 24) }) + ' ' + t('unit_h', { n: h % 24 });
  }

  // since is how long before now (ms) the RFC 3339 time ts was, or "never".
  function since(ts, now) {
    if (!ts) return t('never');
    return t('ago', { age: age((now - Date.parse(ts)) / 1000) });
  }

  function bytes(n) {
    if (typeof n !== 'number') return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) {
      n /= 1024;
      i++;
    }
    return (i === 0 ? String(n) : n.toFixed(1)) + ' ' + units[i];
  }

  // millis is a request time in seconds as milliseconds; 0 means not measured.
  function millis(seconds) {
    if (typeof seconds !== 'number' || !(seconds > 0)) return '–';
    const ms = seconds * 1000;
    return (ms < 10 ? ms.toFixed(2) : ms.toFixed(0)) + ' ms';
  }

  // valueText is a tag's value as published: numbers in their shortest form, no grouping,
  // so that what the page shows is what the MQTT message holds.
  function valueText(v) {
    if (v === null || v === undefined) return '–';
    if (typeof v === 'object') return JSON.stringify(v);
    return String(v);
  }

  function label(prefix, value) {
    const key = prefix + value;
    return key in L ? t(key) : String(value);
  }

  function badge(cls, text) {
    return el('span', { class: 'badge ' + cls }, text);
  }

  function setField(root, name, text, cls) {
    const dd = $(`[data-field="${name}"]`, root);
    dd.replaceChildren(text);
    dd.className = cls || '';
  }

  function renderGateway(doc, now) {
    const g = doc.gateway || {};
    const mqtt = doc.mqtt || {};
    const sec = $('#gateway');
    setField(sec, 'id', g.id || '–');
    setField(sec, 'site', g.site || '–');
    setField(sec, 'area', g.area || '–');
    setField(sec, 'line', g.line || '–');
    setField(sec, 'mqtt', mqtt.connected ? badge('ok', t('mqtt_up')) : badge('bad', t('mqtt_down')));
    setField(sec, 'session', count(mqtt.session));
    setField(sec, 'uptime', age(g.uptime_seconds));
    setField(sec, 'timezone', g.timezone || '–');
    setField(sec, 'updated', new Date(now).toLocaleTimeString(lang));
    $('#gateway-title').textContent = [g.id, [g.site, g.area, g.line].filter(Boolean).join(' / ')]
      .filter(Boolean).join(' · ');
    document.title = (g.id ? g.id + ' · ' : '') + t('title');
  }

  function renderDevices(devices, now) {
    const sec = $('#devices');
    $('.empty', sec).hidden = devices.length > 0;
    $('tbody', sec).replaceChildren(...devices.map((d) => {
      let err = '–';
      if (d.last_error) {
        err = [d.last_error, ' ', el('span', { class: 'dim' }, '(' + since(d.last_error_at, now) + ')')];
      }
      const addr = [d.protocol, d.address, d.unit_id ? '#' + d.unit_id : ''].filter(Boolean).join(' ');
      return el('tr', { 'data-device': d.name, 'data-state': d.state },
        el('td', { class: 'name' }, d.name),
        el('td', { class: 'state' }, badge('state-' + d.state, label('state_', d.state))),
        el('td', { title: d.last_good_poll || null }, since(d.last_good_poll, now)),
        el('td', { class: 'num' }, count(d.polls)),
        el('td', { class: 'num' + (d.errors > 0 ? ' warn' : '') }, count(d.errors)),
        el('td', { class: 'num' }, millis(d.cycle_seconds)),
        el('td', { class: 'addr' }, addr),
        el('td', { class: 'err', title: d.last_error || null }, err));
    }));
  }

  // The per-device tag tables stay in place between refreshes, so a table a person opened or
  // closed stays so; only their rows are replaced.
  const tagBlocks = new Map();

  function renderTags(devices, now) {
    const list = $('#tags .tag-list');
    const filter = $('#tag-filter').value.trim().toLowerCase();
    const total = devices.reduce((n, d) => n + (d.tags || []).length, 0);
    const order = [];
    for (const d of devices) {
      let b = tagBlocks.get(d.name);
      if (!b) {
        b = { count: el('span', { class: 'dim' }), state: el('span'), tbody: el('tbody') };
        b.details = el('details', { 'data-device': d.name },
          el('summary', {}, el('strong', {}, d.name), ' ', b.state, ' ', b.count),
          el('div', { class: 'scroll' }, el('table', { class: 'tags' },
            el('thead', {}, el('tr', {},
              el('th', {}, t('tag')), el('th', { class: 'num' }, t('value')), el('th', {}, t('unit')),
              el('th', {}, t('tag_quality')), el('th', {}, t('read_at')))),
            b.tbody)));
        b.details.open = total <= OPEN_TAGS_UP_TO;
        tagBlocks.set(d.name, b);
      }
      const tags = d.tags || [];
      b.count.textContent = t('tag_count', { n: tags.length });
      b.state.replaceChildren(badge('state-' + d.state, label('state_', d.state)));
      b.tbody.replaceChildren(...tags
        .filter((tg) => !filter || tg.name.toLowerCase().includes(filter))
        .map((tg) => {
          let q = label('quality_', tg.quality);
          if (tg.reason) q += ': ' + tg.reason;
          return el('tr', { 'data-device': d.name, 'data-tag': tg.name, 'data-quality': tg.quality },
            el('td', { class: 'name' }, tg.name),
            el('td', { class: 'num value' }, valueText(tg.value)),
            el('td', { class: 'unit' }, tg.unit || ''),
            el('td', { class: 'quality q-' + tg.quality }, q),
            el('td', { class: 'dim', title: tg.ts || null }, tg.ts ? since(tg.ts, now) : '–'));
        }));
      order.push(b.details);
    }
    for (const [name, b] of tagBlocks) {
      if (!devices.some((d) => d.name === name)) tagBlocks.delete(name);
    }
    if (order.length !== list.children.length || order.some((n, i) => list.children[i] !== n)) {
      list.replaceChildren(...order);
    }
  }

  // The KPI engine adds assets[] to the status: name, shift, oee, availability, performance
  // and quality (fractions, 1 is 100%), and maybe more, which is shown as it comes.
  const KPIS = [['availability', 'availability'], ['performance', 'performance'], ['quality', 'oee_quality']];
  const KNOWN = new Set(['name', 'shift', 'oee', ...KPIS.map(([k]) => k)]);

  function pct(v) {
    return typeof v === 'number' && isFinite(v) ? (v * 100).toFixed(1) + '%' : '–';
  }

  function bar(key, labelKey, v) {
    const fill = el('span', { class: 'fill' });
    // CSSOM, not a style attribute: the page's Content-Security-Policy allows no inline style.
    fill.style.width = (typeof v === 'number' && isFinite(v) ? Math.max(0, Math.min(1, v)) * 100 : 0) + '%';
    return el('div', { class: 'bar' + (v > 1 ? ' over' : ''), 'data-kpi': key },
      el('span', { class: 'label' }, t(labelKey)),
      el('span', { class: 'track' }, fill),
      el('span', { class: 'pct' }, pct(v)));
  }

  function renderAssets(assets) {
    const sec = $('#assets');
    const list = Array.isArray(assets) ? assets : [];
    $('.empty', sec).hidden = list.length > 0;
    $('.asset-list', sec).replaceChildren(...list.map((a) => {
      const head = el('h3', {}, String(a.name ?? '–'));
      if (a.shift !== undefined && a.shift !== null && a.shift !== '') {
        head.append(' ', el('span', { class: 'dim shift' }, t('shift') + ' ' + a.shift));
      }
      const extra = Object.entries(a).filter(([k]) => !KNOWN.has(k));
      return el('article', { class: 'asset', 'data-asset': a.name ?? '' },
        head,
        el('div', { class: 'oee', 'data-kpi': 'oee' }, el('span', { class: 'big pct' }, pct(a.oee)), ' ', t('oee')),
        KPIS.map(([k, lk]) => bar(k, lk, a[k])),
        extra.length === 0 ? null : el('dl', { class: 'extra' }, extra.map(([k, v]) =>
          el('div', {}, el('dt', {}, k), el('dd', {}, valueText(v))))));
    }));
  }

  function renderDelivery(stats) {
    const sec = $('#delivery');
    const b = stats.buffer || {};
    const p = stats.publish || {};
    const pl = stats.pipeline || {};
    setField(sec, 'depth', count(b.depth), b.depth > 0 ? 'warn' : '');
    setField(sec, 'oldest', b.depth > 0 ? age(b.oldest_age_seconds) : '–');
    setField(sec, 'file', bytes(b.file_bytes));
    setField(sec, 'cursor', count(b.cursor) + ' / ' + count(b.head));
    setField(sec, 'rate', (typeof p.rate === 'number' ? p.rate.toFixed(1) : '–') + ' ' + t('per_second'));
    setField(sec, 'published', count(p.published));
    setField(sec, 'acked', count(p.acked));
    setField(sec, 'dropped', count(b.dropped), b.dropped > 0 ? 'bad' : '');
    setField(sec, 'queue_full', count(b.queue_full), b.queue_full > 0 ? 'warn' : '');
    setField(sec, 'pipeline_dropped', count(pl.dropped), pl.dropped > 0 ? 'bad' : '');
    setField(sec, 'dead_letters', count(p.dead_letters), p.dead_letters > 0 ? 'bad' : '');
  }

  function banner(cls, text) {
    const b = $('#banner');
    b.hidden = !text;
    b.className = 'banner ' + (cls || '');
    b.textContent = text || '';
  }

  let lastDoc = null;
  let lastOK = 0;
  const loaded = Date.now();
  let renderings = 0;

  function render(doc) {
    const stats = doc.stats || {};
    // Ages are taken against the gateway's clock (the status's time), not the browser's.
    const now = Date.parse(stats.ts) || Date.now();
    const devices = Array.isArray(doc.devices) ? doc.devices : [];
    renderGateway(doc, now);
    renderDevices(devices, now);
    renderAssets(doc.assets);
    renderDelivery(stats);
    renderTags(devices, now);
    banner(doc.mqtt && doc.mqtt.connected ? '' : 'warn', doc.mqtt && doc.mqtt.connected ? '' : t('mqtt_down_banner'));
    document.body.dataset.statusTs = stats.ts || '';
    document.body.dataset.refresh = String(++renderings);
  }

  async function refresh() {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
    let doc = null;
    try {
      const resp = await fetch(statusURL, { cache: 'no-store', signal: ctl.signal, headers: { Accept: 'application/json' } });
      if (!resp.ok) throw new Error('HTTP ' + resp.status);
      doc = parse(await resp.text());
    } catch (e) {
      banner('bad', t('unreachable', { age: age((Date.now() - (lastOK || loaded)) / 1000) }));
    } finally {
      clearTimeout(timer);
    }
    try {
      if (doc) {
        lastDoc = doc;
        lastOK = Date.now();
        render(doc);
      }
    } catch (e) {
      console.error('statuspage: render', e);
    }
    setTimeout(refresh, REFRESH_MS);
  }

  $('#tag-filter').addEventListener('input', () => {
    if (lastDoc) renderTags(Array.isArray(lastDoc.devices) ? lastDoc.devices : [], Date.parse((lastDoc.stats || {}).ts) || Date.now());
  });
  refresh();
})();
