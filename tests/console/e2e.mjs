// The web console in a real browser, run by tests/console_browser.rs:
// read the counts, retry one dead letter and see it gone (and the outbox
// backlog grow), delete one, check that a read-only console refuses both,
// that a hostile payload does not run, that the dashboard refreshes, and
// save a screenshot of the dashboard.
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const CONSOLE = env('CONSOLE_URL'); // the console, served alone
const READ_ONLY = env('READ_ONLY_URL'); // a read-only one, nested under /ops
const STREAM = env('STREAM_SOURCE'); // redis:{stream}
const SCREENSHOT = env('SCREENSHOT');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  page.on('dialog', (dialog) => {
    throw new Error(`a script of the page opened a dialog: ${dialog.message()}`);
  });
  const number = async (selector) => Number((await page.textContent(selector)).trim());
  const sourceCount = async (source) =>
    Number((await page.textContent(`#dead-letter-counts tr[data-source="${source}"] td.num`)).trim());

  // The counts.
  await page.goto(`${CONSOLE}/`);
  assert.equal(await number('#dead-letter-total .value'), 5);
  assert.equal(await sourceCount('outbox'), 3);
  assert.equal(await sourceCount(STREAM), 2);
  assert.equal(await number('#outbox-backlog .value'), 0);

  // Retry one outbox dead letter: gone, and the backlog grows.
  await page.click('#dead-letter-counts a:text-is("outbox")');
  await page.waitForURL(/dead-letters\?source=outbox/);
  const retried = await page.getAttribute('#dead-letters tbody tr', 'data-id');
  await Promise.all([page.waitForNavigation(), page.click(`tr[data-id="${retried}"] button.retry`)]);
  assert.match(await page.textContent('#notice'), /Sent back for delivery: 1/);
  assert.equal(await page.locator(`tr[data-id="${retried}"]`).count(), 0);
  assert.equal(await page.locator('#dead-letters tbody tr').count(), 2);
  await page.goto(`${CONSOLE}/`);
  assert.equal(await number('#outbox-backlog .value'), 1);
  assert.equal(await sourceCount('outbox'), 2);

  // A hostile payload is shown, not run.
  await page.goto(`${CONSOLE}/dead-letter?source=outbox&id=e2e-hostile`);
  assert.match(await page.textContent('#payload'), /<script>alert\('pwned'\)<\/script>/);
  assert.equal(await page.locator('main script').count(), 0);

  // Delete one of the stream's.
  await page.goto(`${CONSOLE}/dead-letters?source=${encodeURIComponent(STREAM)}`);
  const deleted = await page.getAttribute('#dead-letters tbody tr', 'data-id');
  await Promise.all([page.waitForNavigation(), page.click(`tr[data-id="${deleted}"] button.delete`)]);
  assert.match(await page.textContent('#notice'), /Deleted: 1/);
  assert.equal(await page.locator(`tr[data-id="${deleted}"]`).count(), 0);
  assert.equal(await page.locator('#dead-letters tbody tr').count(), 1);

  // A read-only console shows no buttons and refuses both actions.
  const left = await page.getAttribute('#dead-letters tbody tr', 'data-id');
  await page.goto(`${READ_ONLY}/dead-letters?source=outbox`);
  assert.match(await page.textContent('header .badge'), /read-only/);
  assert.equal(await page.locator('button').filter({ hasText: /Retry|Delete/ }).count(), 0);
  for (const action of ['retry', 'delete']) {
    const status = await page.evaluate(
      async ([url, id, source]) => {
        const body = new URLSearchParams({ csrf: 'guess', source, id });
        return (await fetch(url, { method: 'POST', body })).status;
      },
      [`${READ_ONLY}/dead-letter/${action}`, left, STREAM],
    );
    assert.equal(status, 403, `read-only ${action}`);
  }
  await page.goto(READ_ONLY);
  assert.equal(await page.getAttribute('header a.brand', 'href'), '/ops');
  assert.equal(await sourceCount(STREAM), 1, 'the read-only console changed nothing');
  assert.equal(await page.getAttribute('#dead-letter-counts a', 'href'), '/ops/dead-letters?source=outbox');

  // The dashboard refreshes itself, then the screenshot.
  await page.goto(`${CONSOLE}/`);
  const before = await page.textContent('#live p.muted:last-child');
  await page.waitForFunction(
    (text) => document.querySelector('#live p.muted:last-child').textContent !== text,
    before,
    { timeout: 10_000 },
  );
  assert.equal(await number('#dead-letter-total .value'), 3);
  assert.ok(await page.locator('svg.graph polyline').count() >= 3, 'the graph');
  await page.screenshot({ path: SCREENSHOT, fullPage: true });
  console.log(`ok: retried ${retried}, deleted ${deleted}, screenshot ${SCREENSHOT}`);
} finally {
  await browser.close();
}
