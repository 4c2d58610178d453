import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { createTempDatabase, postgresOrSkip, type TempDatabase } from '../helpers/databases.js';
import { ADMIN_KEY } from '../helpers/harness.js';
import { artifactPath, chromiumOrSkip, launchChromium } from '../helpers/browser.js';
import { client, spawnGateway, type Proc } from '../helpers/processes.js';

/** A merchant's webhook receiver that answers 500 to the first attempt of every event. */
async function receiver() {
  const received: string[] = [];
  const seen = new Set<string>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      const id = (JSON.parse(body) as { id: string }).id;
      received.push(id);
      const first = !seen.has(id);
      seen.add(id);
      res.writeHead(first ? 500 : 200).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    close: () => new Promise((r) => server.close(r)),
  };
}

const DESKTOP = { width: 1440, height: 900 };
const PHONE = { width: 390, height: 844 };

for (const backend of ['pglite', 'postgres'] as const) {
  // a bound on the whole suite: a browser or gateway that stops answering fails it, never hangs `npm test`
  describe(`the console in Chromium on ${backend}`, { timeout: 300_000 }, () => {
    let temp: TempDatabase | undefined;
    let gw: Proc | undefined;
    let browser: Browser | undefined;
    let rx: Awaited<ReturnType<typeof receiver>>;
    let skip = false;
    let merchant: { id: string; name: string; testKey: string };
    let api: ReturnType<typeof client>;
    let admin: ReturnType<typeof client>;
    let payment: any;
    let merchantContext: BrowserContext;
    let page: Page;

    before(async (t) => {
      if (!chromiumOrSkip(t as never) || (backend === 'postgres' && !(await postgresOrSkip(t as never)))) {
        skip = true;
        return;
      }
      if (backend === 'postgres') temp = await createTempDatabase();
      // started together; each kept as soon as it is up, so that `after` stops whatever did start
      const started = await Promise.allSettled([
        spawnGateway({ databaseUrl: temp?.url, env: { WEBHOOK_RETRY_SCHEDULE: '0.3,5', SETTLE_WORKER_POLL_MS: '50' }, readyTimeoutMs: 90_000 }).then((g) => (gw = g)),
        launchChromium().then((b) => (browser = b)),
        receiver().then((r) => (rx = r)),
      ]);
      const failed = started.find((s) => s.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
      if (!gw || !browser) throw new Error('unreachable: every start settled');
      admin = client(gw.url, ADMIN_KEY);
      const m = await admin('POST', '/v1/admin/merchants', { name: `Console ${backend}` });
      merchant = { id: m.body.id, name: m.body.name, testKey: m.body.api_keys.test };
      api = client(gw.url, merchant.testKey);
      await api('POST', '/v1/connector_accounts', { connector: 'sandbox', name: 'Sandbox' });
      const hook = await api('POST', '/v1/webhook_endpoints', { url: rx.url, enabled_events: ['*'] });
      assert.equal(hook.status, 201, hook.raw);
      merchantContext = await browser.newContext({ viewport: DESKTOP });
      page = await merchantContext.newPage();
    });
    after(async () => {
      await browser?.close();
      await gw?.kill();
      await rx?.close();
      await temp?.drop();
    });
    const it = (name: string, fn: () => Promise<void>) => test(name, async (t) => (skip ? t.skip('no browser or database') : fn()));
    const shot = async (p: Page, name: string) => {
      await p.screenshot({ path: artifactPath(backend, `${name}-desktop.png`), fullPage: true });
      // phone width once is enough to review the layout
      if (backend === 'pglite') {
        const size = p.viewportSize()!;
        await p.setViewportSize(PHONE);
        await p.screenshot({ path: artifactPath(backend, `${name}-phone.png`), fullPage: true });
        await p.setViewportSize(size);
      }
    };
    const signIn = async (p: Page, key: string) => {
      await p.goto(`${gw!.url}/dashboard`);
      await p.getByLabel('API key').fill(key);
      await p.getByRole('button', { name: 'Sign in' }).click();
      await p.getByRole('button', { name: 'Sign out' }).waitFor();
    };

    it('signs in with a secret key, keeps no key in the browser, and lists a payment made through the API', async () => {
      const made = await api('POST', '/v1/payments', {
        amount: 10_000, currency: 'USD', payment_method: 'pm_card_visa', order_id: `order-${backend}`, customer_id: 'cus_42',
        line_items: [{ name: 'Mug', quantity: 2, unit_amount: 2500 }, { name: 'Tea', quantity: 1, unit_amount: 5000 }],
      });
      assert.equal(made.status, 201, made.raw);
      payment = made.body;
      assert.ok(gw!.output().includes(`Console:       ${gw!.url}/dashboard`), 'serve prints the console\'s address');
      await page.goto(`${gw!.url}/dashboard`);
      await shot(page, 'sign-in');
      await signIn(page, merchant.testKey);
      await page.getByRole('heading', { name: 'Overview' }).waitFor();
      await page.getByText('Volume per day (USD)').waitFor();
      await shot(page, 'overview');

      const stored = await page.evaluate(() => JSON.stringify({ cookie: document.cookie, local: { ...localStorage }, session: { ...sessionStorage } }));
      assert.ok(!stored.includes(merchant.testKey), 'the key is nowhere the page can read');
      assert.equal(JSON.parse(stored).cookie, '', 'the session cookie is HttpOnly');
      const cookies = await merchantContext.cookies();
      assert.deepEqual(cookies.map((c) => [c.name, c.httpOnly, c.sameSite]), [['settle_session', true, 'Strict']]);

      const mode = page.getByRole('group', { name: 'Mode' });
      assert.equal(await mode.getByRole('button', { name: 'Test' }).getAttribute('aria-pressed'), 'true');
      assert.equal(await mode.getByRole('button', { name: 'Live' }).getAttribute('aria-pressed'), 'false');

      await page.getByRole('link', { name: 'Payments' }).click();
      await page.getByRole('link', { name: payment.id }).waitFor();
      // a new page puts the keyboard on its heading
      assert.equal(await page.evaluate(() => document.activeElement?.textContent), 'Payments');
      await page.getByLabel('Order id').fill(`order-${backend}`);
      await page.getByRole('button', { name: 'Apply filters' }).click();
      await page.getByRole('link', { name: payment.id }).waitFor();
      await shot(page, 'payments');
    });

    it('refunds half from the console once despite a double click, and the timeline shows the refund, the ledger and the webhook deliveries', async () => {
      await page.getByRole('link', { name: payment.id }).click();
      await page.getByRole('heading', { name: 'Refund' }).waitFor();
      await page.getByLabel('Partial').check();
      await page.getByLabel('Amount (USD)').fill('50.00');
      await page.getByLabel('Reason', { exact: true }).selectOption('customer_request');
      await page.getByRole('button', { name: 'Refund', exact: true }).dblclick();
      await page.getByText(/Refund re_\w+ for \$50\.00: succeeded/).waitFor();

      const after = await api('GET', `/v1/payments/${payment.id}`);
      assert.equal(after.body.amount_refunded, 5000);
      assert.equal(after.body.status, 'partially_refunded');
      const refunds = await api('GET', `/v1/payments/${payment.id}/refunds`);
      assert.equal(refunds.body.data.length, 1, 'one refund for a double click');
      const refund = refunds.body.data[0];

      const timeline = page.getByTestId('timeline');
      await timeline.getByText(`Refund ${refund.id} is succeeded`).waitFor();
      await timeline.getByText('Ledger: refund').waitFor();
      await timeline.getByText('Event refund.succeeded').waitFor();
      // the receiver refuses every first attempt: the delivery is retried and the timeline catches up by itself
      const delivery = timeline.locator('li', { hasText: 'Event refund.succeeded' }).getByTestId('delivery');
      await delivery.filter({ hasText: /succeeded after 2 attempts/ }).waitFor({ timeout: 20_000 });
      assert.equal(await page.getByTestId('amount-refunded').textContent(), '$50.00');
      await shot(page, 'payment-detail');
    });

    it('redelivers an event from the Developers page', async () => {
      const events = await api('GET', '/v1/events?type=refund.succeeded');
      const event = events.body.data[0];
      const before = rx.received.filter((id) => id === event.id).length;
      await page.getByRole('link', { name: 'Developers' }).click();
      await page.getByRole('heading', { name: 'Webhook endpoints' }).waitFor();
      const item = page.getByTestId('event').filter({ hasText: 'refund.succeeded' }).first();
      await item.getByRole('button', { name: 'Redeliver refund.succeeded' }).click();
      // a redelivery starts a fresh schedule: one more POST, listed with the two before it
      await item.locator('summary', { hasText: '3 attempts' }).waitFor({ timeout: 20_000 });
      await item.getByTestId('delivery').filter({ hasText: /succeeded after 1 attempt$/ }).waitFor();
      assert.equal(rx.received.filter((id) => id === event.id).length, before + 1);
      await shot(page, 'developers');
      await page.getByRole('link', { name: 'Refunds' }).click();
      await page.getByRole('heading', { name: 'Refunds' }).waitFor();
      await page.getByText(payment.id).first().waitFor();
      await shot(page, 'refunds');
      await page.getByRole('link', { name: 'Connector accounts' }).click();
      await page.getByRole('cell', { name: 'Sandbox', exact: true }).waitFor();
      await shot(page, 'connector-accounts');
    });

    it('turns the refund button into the API\'s 403 message when the admin flips the kill switch', async () => {
      const adminContext = await browser!.newContext({ viewport: DESKTOP });
      const adminPage = await adminContext.newPage();
      await signIn(adminPage, ADMIN_KEY);
      await adminPage.getByRole('heading', { name: 'Platform' }).waitFor();
      await adminPage.getByRole('button', { name: `Turn refunds off for ${merchant.name}…` }).click();
      // what it affects, before anything changes
      await adminPage.getByTestId('affected').getByText(merchant.name).waitFor();
      assert.equal((await admin('GET', '/v1/admin/features/refunds')).body.merchants[merchant.id], undefined, 'nothing flipped before confirming');
      await shot(adminPage, 'platform');
      await adminPage.getByRole('button', { name: 'Confirm' }).click();
      await adminPage.getByRole('button', { name: `Turn refunds on for ${merchant.name}…` }).waitFor();
      await adminContext.close();

      const refused = await api('POST', `/v1/payments/${payment.id}/refunds`, { amount: 100 });
      assert.equal(refused.status, 403);
      await page.goto(`${gw!.url}/dashboard/#/payments/${payment.id}`);
      await page.getByLabel('Partial').check();
      await page.getByLabel('Amount (USD)').fill('10');
      await page.getByRole('button', { name: 'Refund', exact: true }).click();
      const blocked = page.getByTestId('refund-blocked');
      await blocked.waitFor();
      assert.equal(await blocked.textContent(), refused.body.error.message);
      assert.equal(await page.getByRole('button', { name: 'Refund', exact: true }).count(), 0, 'the button gave way to the message');
      assert.equal((await api('GET', `/v1/payments/${payment.id}`)).body.amount_refunded, 5000);
      await admin('PUT', '/v1/admin/features/refunds', { enabled: true, merchant_id: merchant.id });
    });

    it('shows a restricted key only what it was granted, and the API refuses the rest', async () => {
      const key = await api('POST', '/v1/api_keys', { name: 'Support agent', permissions: ['payments:read'] });
      const context = await browser!.newContext({ viewport: DESKTOP });
      const agent = await context.newPage();
      // keyboard only: type the key, Enter submits
      await agent.goto(`${gw!.url}/dashboard`);
      await agent.getByLabel('API key').focus();
      await agent.keyboard.type(key.body.secret);
      await agent.keyboard.press('Enter');
      await agent.getByRole('button', { name: 'Sign out' }).waitFor();
      const nav = agent.getByRole('navigation', { name: 'Console' });
      await nav.getByRole('link', { name: 'Payments' }).waitFor();
      assert.deepEqual(await nav.getByRole('link').allTextContents(), ['Overview', 'Payments']);
      await agent.goto(`${gw!.url}/dashboard/#/payments/${payment.id}`);
      await agent.getByTestId('amount-refunded').waitFor();
      assert.equal(await agent.getByRole('heading', { name: 'Refund', exact: true }).count(), 0, 'no refund form');
      assert.equal(await agent.getByRole('button', { name: /Redeliver/ }).count(), 0, 'no redeliver button');
      // and the API behind the console refuses it anyway, naming the permission
      const answer = await agent.evaluate(async (id) => {
        const session = await (await fetch('/v1/console/session')).json();
        const r = await fetch(`/v1/payments/${id}/refunds`, { method: 'POST', headers: { 'x-csrf-token': session.csrf_token } });
        return { status: r.status, body: await r.json() };
      }, payment.id);
      assert.equal(answer.status, 403);
      assert.equal(answer.body.error.code, 'insufficient_permissions');
      assert.match(answer.body.error.message, /refunds:write/);
      await shot(agent, 'restricted-payment-detail');

      // the mode switch never shows live data under this test session: it asks for a live key
      await agent.getByRole('group', { name: 'Mode' }).getByRole('button', { name: 'Live' }).click();
      await agent.getByText('Switching to live mode: sign in with a live key').waitFor();
      const after = await agent.evaluate(async () => (await fetch('/v1/console/session')).status);
      assert.equal(after, 401, 'the test session ended');
      await context.close();
    });
  });
}
