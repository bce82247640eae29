#!/usr/bin/env node
// check.js loads a running agent's status page in headless Chromium (Debian's, driven by
// playwright-core) and reports what the page showed, for the Go test in cmd/floorlink/browser,
// which owns every assertion. It prints one JSON document on stdout; progress goes to stderr.
//
//   node check.js --base http://127.0.0.1:PORT --out DIR --modules DIR/node_modules
//                 [--chromium /usr/bin/chromium] [--samples 4] [--assets FILE]
//
// For each run (English; Korean by ?lang=ko; Korean by Accept-Language alone) it waits for the
// page's renderings and, right after each one, reads the rendered device rows, tag values and
// asset cards (OEE, the availability, performance and quality bars, the extra rows) together
// with the status the page rendered (matched by stats.ts), then reads /api/v1/status itself at
// once: the same moment, within one refresh. It takes a screenshot per run (and one
// of the Korean page at a phone's width), records every request the browser made, and every
// script error. With --assets, a last run answers the page's status requests with the real
// status, its assets replaced by those in FILE (values the agent does not send, such as a
// performance over 100%), and reads the OEE section.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

function args() {
  const o = { chromium: '/usr/bin/chromium', samples: 4 };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i].replace(/^--/, '');
    o[k] = argv[i + 1];
  }
  for (const k of ['base', 'out', 'modules']) {
    if (!o[k]) throw new Error(`--${k} is required`);
  }
  o.samples = Number(o.samples);
  return o;
}

// readPage runs in the page: what a person sees, with the data attributes that name it.
function readPage() {
  const q = (sel, root) => (root || document).querySelector(sel);
  const text = (e) => (e ? e.textContent.trim() : null);
  const devices = [...document.querySelectorAll('#devices tbody tr')].map((tr) => ({
    name: tr.dataset.device,
    nameText: text(q('td.name', tr)),
    state: tr.dataset.state,
    stateText: text(q('td.state', tr)),
  }));
  const tags = {};
  for (const tr of document.querySelectorAll('#tags tr[data-tag]')) {
    (tags[tr.dataset.device] = tags[tr.dataset.device] || {})[tr.dataset.tag] = {
      value: text(q('td.value', tr)),
      quality: tr.dataset.quality,
    };
  }
  const headings = {};
  for (const h of document.querySelectorAll('section[id] > h2')) headings[h.parentElement.id] = text(h);
  const assets = [...document.querySelectorAll('#assets article.asset')].map((a) => {
    const bars = {};
    for (const b of a.querySelectorAll('.bar[data-kpi]')) {
      bars[b.dataset.kpi] = {
        label: text(q('.label', b)),
        text: text(q('.pct', b)),
        width: q('.fill', b).style.width,
        over: b.classList.contains('over'),
      };
    }
    const extra = {};
    for (const row of a.querySelectorAll('dl.extra > div')) extra[text(q('dt', row))] = text(q('dd', row));
    return { name: a.dataset.asset, title: text(q('h3', a)), oee: text(q('[data-kpi=oee] .pct', a)), bars, extra };
  });
  return {
    refresh: Number(document.body.dataset.refresh),
    statusTs: document.body.dataset.statusTs,
    lang: document.documentElement.lang,
    title: document.title,
    headings,
    gateway: text(q('#gateway [data-field=id]')),
    mqtt: text(q('#gateway [data-field=mqtt]')),
    banner: q('#banner').hidden ? '' : text(q('#banner')),
    assetsEmpty: text(q('#assets .empty')),
    assetsEmptyHidden: q('#assets .empty').hidden,
    devices,
    tags,
    assets,
  };
}

async function main() {
  const o = args();
  const { chromium } = require(require.resolve('playwright-core', { paths: [o.modules] }));
  const browser = await chromium.launch({
    executablePath: o.chromium,
    headless: true,
    // As root in a container Chromium needs --no-sandbox. Background networking (updates,
    // safe browsing, sync, component updates) is off: the machine has no internet, and the
    // page's own requests must be all the browser makes for the page.
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-default-apps', '--disable-extensions'],
  });
  const report = { chromium: browser.version(), runs: [], requests: [], errors: [] };
  const runs = [
    { name: 'en', path: '/', locale: 'en-US' },
    { name: 'ko', path: '/?lang=ko', locale: 'en-US', phone: true },
    { name: 'ko-accept-language', path: '/', locale: 'ko-KR' },
  ];
  try {
    for (const r of runs) {
      report.runs.push(await run(browser, o, r, report));
    }
    if (o.assets) {
      report.assets = await assetsRun(browser, o, JSON.parse(fs.readFileSync(o.assets, 'utf8')), report);
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(report) + '\n');
}

// watch records every request of a context and every script error of its page.
function watch(context, page, name, report) {
  context.on('request', (req) => report.requests.push({ run: name, url: req.url(), type: req.resourceType() }));
  page.on('pageerror', (e) => report.errors.push({ run: name, error: String(e) }));
  page.on('console', (m) => {
    if (m.type() === 'error') report.errors.push({ run: name, error: 'console: ' + m.text() });
  });
  page.setDefaultTimeout(15000);
}

async function run(browser, o, r, report) {
  process.stderr.write(`check.js: ${r.name}: ${o.base}${r.path} (locale ${r.locale})\n`);
  const context = await browser.newContext({ locale: r.locale, viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(context, page, r.name, report);
  // The bodies of the statuses the page fetched, by their stats.ts.
  const rendered = new Map();
  const pending = [];
  page.on('response', (resp) => {
    if (new URL(resp.url()).pathname !== '/api/v1/status') return;
    pending.push(resp.text().then((text) => {
      try {
        rendered.set(JSON.parse(text).stats.ts, text);
      } catch (e) {
        report.errors.push({ run: r.name, error: 'status response: ' + e });
      }
    }, () => {}));
  });
  await page.goto(o.base + r.path, { waitUntil: 'load' });
  await page.waitForFunction(() => Number(document.body.dataset.refresh) >= 1 &&
    document.querySelectorAll('#devices tbody tr').length > 0);
  const samples = [];
  for (let i = 0; i < o.samples; i++) {
    const seen = await page.evaluate(() => Number(document.body.dataset.refresh));
    await page.waitForFunction((n) => Number(document.body.dataset.refresh) > n, seen);
    const dom = await page.evaluate(readPage);
    const resp = await fetch(o.base + '/api/v1/status', { cache: 'no-store' });
    const api = await resp.text();
    await Promise.all(pending);
    samples.push({ dom, rendered: rendered.get(dom.statusTs) || null, api });
  }
  const result = { name: r.name, path: r.path, locale: r.locale, samples, screenshots: [] };
  const shot = path.join(o.out, `status-${r.name}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  result.screenshots.push(shot);
  if (r.phone) {
    await page.setViewportSize({ width: 390, height: 844 });
    const seen = await page.evaluate(() => Number(document.body.dataset.refresh));
    await page.waitForFunction((n) => Number(document.body.dataset.refresh) > n, seen);
    const phone = path.join(o.out, `status-${r.name}-phone.png`);
    await page.screenshot({ path: phone, fullPage: true });
    result.screenshots.push(phone);
  }
  await context.close();
  return result;
}

// assetsRun answers the page's status requests with the agent's status, its assets replaced by
// the given ones, and reads the OEE section once the page rendered them.
async function assetsRun(browser, o, assets, report) {
  const name = 'assets';
  process.stderr.write(`check.js: ${name}: ${assets.length} assets added to the status\n`);
  const context = await browser.newContext({ locale: 'en-US', viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  watch(context, page, name, report);
  await page.route('**/api/v1/status', async (route) => {
    const resp = await route.fetch();
    const doc = await resp.json();
    doc.assets = assets;
    await route.fulfill({ response: resp, json: doc });
  });
  await page.goto(o.base + '/', { waitUntil: 'load' });
  await page.waitForFunction((names) => [...document.querySelectorAll('#assets article.asset')]
    .map((a) => a.dataset.asset).join('\n') === names, assets.map((a) => a.name).join('\n'));
  const dom = await page.evaluate(readPage);
  const shot = path.join(o.out, 'status-assets.png');
  await page.locator('#assets').screenshot({ path: shot });
  await context.close();
  return { dom, screenshots: [shot] };
}

main().catch((e) => {
  process.stderr.write(`check.js: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
