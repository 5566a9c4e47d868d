// Runs a kdeploy embedder's web bundle (its own index.html) in headless Chromium (onnxruntime-web,
// WASM), one text per call, through the page's window.kdeploy.embed.
//   node browser_embed.mjs URL TEXTS.json OUT.json [CHROMIUM]
import { readFileSync, writeFileSync } from 'node:fs';
import puppeteer from 'puppeteer-core';

const [url, textsFile, outFile, chromium = '/usr/bin/chromium'] = process.argv.slice(2);
const texts = JSON.parse(readFileSync(textsFile, 'utf8'));
const browser = await puppeteer.launch({ executablePath: chromium, headless: true,
                                         args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
try {
  const page = await browser.newPage();
  const requests = [];
  page.on('request', r => requests.push(r.url()));
  page.on('pageerror', e => console.error('page error:', e.message));
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction('window.kdeploy && window.kdeploy.embed', { timeout: 120000 });
  const external = requests.filter(u => !u.startsWith(new URL(url).origin) && !u.startsWith('data:') && !u.startsWith('blob:'));
  if (external.length) throw new Error(`the page fetched from outside localhost: ${external[0]}`);
  const results = await page.evaluate(async (texts) => {
    const out = [];
    for (const t of texts) {
      const t0 = performance.now();
      const embedding = await window.kdeploy.embed(t);
      out.push({ embedding, ms: performance.now() - t0 });
    }
    return out;
  }, texts);
  writeFileSync(outFile, JSON.stringify({ runtime: 'chromium', versions: { chromium: await browser.version() },
                                          requests: requests.length, results }));
} finally {
  await browser.close();
}
