// The dashboard in a real browser: Debian's Chromium, headless, driven by playwright-core, against
// a running service (scripts/browser-test.sh starts one with a broker of its own).
//
// Usage: node dashboard.test.mjs --url http://127.0.0.1:PORT/ [--docs]
//   --docs (or DASHBOARD_SCREENSHOT_DOCS=1) sends a stream of sample events first and also saves
//   the screenshot as docs/dashboard.png, the README's picture.
// Environment: CHROMIUM (default /usr/bin/chromium).
// Saves artifacts/dashboard.png (artifacts/dashboard-failure.png when a check fails) and closes
// with `browser-test: N passed, N failed`. Every wait polls with a deadline; none is a fixed sleep.
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const argv = process.argv.slice(2);
const option = (name) => {
  const index = argv.indexOf(name);
  return index >= 0 ? argv[index + 1] : undefined;
};
const base = option('--url') || process.env.DASHBOARD_URL;
const docs = argv.includes('--docs') || process.env.DASHBOARD_SCREENSHOT_DOCS === '1';
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = path.join(root, 'artifacts');
const TIMEOUT_MS = 15_000;
/** The consumers commit every second and report lag every KAFKA_STATISTICS_INTERVAL_MS. */
const LAG_TIMEOUT_MS = 30_000;
const TOPICS = ['movie-events', 'payment-events', 'user-events'];

if (!base) {
  console.error('usage: node dashboard.test.mjs --url http://127.0.0.1:PORT/ [--docs]');
  process.exit(2);
}

let passed = 0;
/** Runs one named check; the first failure ends the test. */
async function check(name, body) {
  try {
    await body();
  } catch (error) {
    error.message = `${name}: ${error.message}`;
    throw error;
  }
  passed += 1;
  console.log(`browser-test: ok - ${name}`);
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

/** Polls `predicate(arg)` in the page until it is true, with a deadline. */
async function waitInPage(page, what, predicate, arg, timeout = TIMEOUT_MS) {
  try {
    await page.waitForFunction(predicate, arg, { timeout, polling: 100 });
  } catch {
    throw new Error(`not within ${timeout / 1000} s: ${what}`);
  }
}

async function api(route, body) {
  const response = await fetch(new URL(route, base), body && {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const answer = await response.json();
  return { status: response.status, answer };
}

async function post(type, body) {
  const { status, answer } = await api(`api/events/${type}`, body);
  assert(status === 201, `POST ${type} answered ${status}: ${JSON.stringify(answer)}`);
  return answer;
}

/** The numbers the page shows: counters, payments, and the chart's counts per line. */
function readPage(page) {
  return page.evaluate(() => {
    const value = (id) => Number(document.getElementById(id).dataset.value ?? NaN);
    const legend = (type) => Number(document.querySelector(`#rate-legend [data-type="${type}"]`).dataset.count ?? 0);
    const payment = document.querySelector('[data-testid="payment-completed"]');
    return {
      total: value('count-total'),
      movie: value('count-movie'),
      user: value('count-user'),
      payment: value('count-payment'),
      completed: payment ? Number(payment.dataset.count) : NaN,
      completedAmount: payment ? Number(payment.dataset.amount) : NaN,
      chart: { movie: legend('movie'), user: legend('user'), payment: legend('payment'), all: legend('all') },
    };
  });
}

async function rowOf(page, eventId) {
  const row = page.locator(`#events-body tr[data-event-id="${eventId}"]`);
  try {
    await row.waitFor({ timeout: TIMEOUT_MS });
  } catch {
    throw new Error(`event ${eventId} did not appear in the table within ${TIMEOUT_MS / 1000} s`);
  }
  return row.locator('td').allInnerTexts();
}

/** Checks a row against the service's answer to the POST that stored the event. */
async function expectRow(page, answer, action, key) {
  const [, type, shownAction, id, place, shownKey] = await rowOf(page, answer.event.id);
  const expected = [answer.event.type, action, answer.event.id, `${answer.topic} / ${answer.partition} / ${answer.offset}`, String(key)];
  const shown = [type, shownAction, id, place, shownKey];
  assert(JSON.stringify(shown) === JSON.stringify(expected), `row ${JSON.stringify(shown)}, expected ${JSON.stringify(expected)}`);
}

async function main() {
  await mkdir(artifacts, { recursive: true });
  const browser = await chromium.launch({
    executablePath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    // Chromium logs every 4xx as an error: the form's refused event is one on purpose.
    const refused = message.text().includes('status of 400') &&
      /\/api\/events\/(movie|user|payment)$/.test(message.location().url);
    if (!refused) problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  try {
    await run(page, problems);
    console.log(`browser-test: ${passed} passed, 0 failed`);
  } catch (error) {
    await page.screenshot({ path: path.join(artifacts, 'dashboard-failure.png'), fullPage: true }).catch(() => {});
    console.error(`browser-test: FAILED - ${error.message}`);
    for (const problem of problems) console.error(`browser-test:   ${problem}`);
    console.error('browser-test: the page as it was: artifacts/dashboard-failure.png');
    console.log(`browser-test: ${passed} passed, 1 failed`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

async function run(page, problems) {
  const unique = Date.now() % 1_000_000_000;

  await check('the page loads and its event stream connects', async () => {
    const response = await page.goto(base);
    assert(response && response.status() === 200, `GET / answered ${response && response.status()}`);
    await waitInPage(page, 'the stream state is live',
      () => document.getElementById('stream-state').dataset.state === 'live');
  });

  let before;
  await check("the counters show the service's statistics", async () => {
    const { answer: stats } = await api('api/events/stats');
    await waitInPage(page, `the total counter shows ${stats.processed_total}`,
      (total) => document.getElementById('count-total').dataset.value === String(total), stats.processed_total);
    before = await readPage(page);
    assert(before.movie === stats.by_type.movie.total && before.payment === stats.by_type.payment.total,
      `page ${JSON.stringify(before)}, service ${JSON.stringify(stats.by_type)}`);
  });

  const movie = await post('movie', { movie_id: unique, title: 'Browser Test', action: 'viewed' });
  const user = await post('user', { user_id: unique, action: 'registered' });
  const payment = await post('payment', { payment_id: unique, user_id: unique, amount: 12.34, status: 'completed' });

  await check('each event posted over HTTP appears in the table with its type, action and place', async () => {
    await expectRow(page, movie, 'viewed', unique);
    await expectRow(page, user, 'registered', unique);
    await expectRow(page, payment, 'completed', unique);
    // Newest first; the three topics' consumers process in an order of their own.
    const top = await page.locator('#events-body tr').evaluateAll((rows) => rows.slice(0, 3).map((r) => r.dataset.eventId));
    const posted = [movie, user, payment].map((a) => a.event.id);
    assert(posted.every((id) => top.includes(id)), `the top rows are ${top}, not the events just posted`);
  });

  await check('the counters go up by one per type and by three in all', async () => {
    await waitInPage(page, 'the counters count the three events', (b) => {
      const value = (id) => Number(document.getElementById(id).dataset.value);
      return value('count-total') === b.total + 3 && value('count-movie') === b.movie + 1 &&
        value('count-user') === b.user + 1 && value('count-payment') === b.payment + 1;
    }, before);
  });

  await check('the payments panel counts the completed payment and adds its amount', async () => {
    await waitInPage(page, 'one more completed payment, 12.34 more', (b) => {
      const row = document.querySelector('[data-testid="payment-completed"]');
      return row && Number(row.dataset.count) === b.completed + 1 &&
        Math.abs(Number(row.dataset.amount) - b.completedAmount - 12.34) < 1e-6;
    }, before);
  });

  await check("the rate chart counts each type's event in the last minute", async () => {
    await waitInPage(page, 'one more event per type on the chart, three more on the line of all', (b) => {
      const count = (type) => Number(document.querySelector(`#rate-legend [data-type="${type}"]`).dataset.count);
      return count('movie') === b.chart.movie + 1 && count('user') === b.chart.user + 1 &&
        count('payment') === b.chart.payment + 1 && count('all') >= b.chart.all + 3;
    }, before);
    for (const type of ['movie', 'user', 'payment', 'all']) {
      const points = await page.getAttribute(`[data-testid="rate-line-${type}"]`, 'points');
      assert(points && points.split(' ').length === 60, `the ${type} line has no 60 points: ${points}`);
    }
  });

  await check('the form sends a payment event and the table shows it', async () => {
    await page.selectOption('#send-type', 'payment');
    assert(await page.isVisible('fieldset[data-type="payment"]'), 'the payment fields are hidden');
    assert(await page.isHidden('fieldset[data-type="movie"]'), 'the movie fields still show');
    const fields = page.locator('fieldset[data-type="payment"]');
    await fields.locator('[name="payment_id"]').fill(String(unique + 1));
    await fields.locator('[name="amount"]').fill('5.5');
    await fields.locator('[name="status"]').selectOption('refunded');
    await page.click('#send-button');
    await waitInPage(page, 'the form shows a 201',
      () => document.getElementById('send-result').dataset.status === '201');
    const id = await page.getAttribute('#send-result', 'data-event-id');
    const shownId = await page.textContent('[data-testid="send-result-id"]');
    assert(id && shownId === id, `the result shows ${shownId}, its id is ${id}`);
    const [, type, action] = await rowOf(page, id);
    assert(type === 'payment' && action === 'refunded', `row shows ${type} ${action}`);
  });

  await check("the form shows the service's errors field by field", async () => {
    await page.selectOption('#send-type', 'movie');
    const fields = page.locator('fieldset[data-type="movie"]');
    await fields.locator('[name="title"]').fill('   ');
    await fields.locator('[name="action"]').selectOption('rated');
    await fields.locator('[name="rating"]').fill('');
    await page.click('#send-button');
    await waitInPage(page, 'the form shows a 400',
      () => document.getElementById('send-result').dataset.status === '400');
    const named = await page.locator('#send-result li').evaluateAll((items) => items.map((i) => i.dataset.field));
    assert(named.includes('title') && named.includes('rating'), `fields named: ${named}`);
    assert(!(await page.getAttribute('#send-result', 'data-event-id')), 'a refused event has an id');
    await fields.locator('[name="title"]').fill('Test Movie');
    await fields.locator('[name="action"]').selectOption('viewed');
  });

  await check('the lag panel shows every topic, caught up', async () => {
    await waitInPage(page, `lag rows for ${TOPICS.join(', ')}, each 0`, (topics) => {
      const rows = [...document.querySelectorAll('#lag-body tr')];
      return topics.every((topic) => rows.some((r) => r.dataset.topic === topic)) &&
        rows.every((r) => r.dataset.lag === '0');
    }, TOPICS, LAG_TIMEOUT_MS);
  });

  if (docs) await sampleTraffic(page, unique);

  await check('the page reported no errors (a blocked script or style would be one)', async () => {
    assert(problems.length === 0, problems.join('; '));
  });

  await check('the content security policy is in force: an injected inline script does not run', async () => {
    const outcome = await page.evaluate(() => new Promise((resolve) => {
      document.addEventListener('securitypolicyviolation', (e) => resolve(`blocked by ${e.violatedDirective}`), { once: true });
      const script = document.createElement('script');
      script.textContent = 'window.injectedScriptRan = true;';
      document.body.append(script);
      setTimeout(() => resolve(window.injectedScriptRan ? 'ran' : 'no violation reported'), 2000);
    }));
    assert(outcome.startsWith('blocked by script-src'), `the inline script: ${outcome}`);
  });

  await check('a screenshot is saved', async () => {
    const shot = path.join(artifacts, 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`browser-test: screenshot in ${path.relative(root, shot)}`);
    if (docs) {
      await page.screenshot({ path: path.join(root, 'docs', 'dashboard.png'), fullPage: true });
      console.log('browser-test: and in docs/dashboard.png');
    }
  });
}

/** For the README's picture: a short burst of mixed events, so that the chart has a shape. */
async function sampleTraffic(page, unique) {
  const titles = ['The Matrix', 'Alien', 'Arrival', 'Heat', 'Up', 'Dune'];
  const rounds = 36;
  for (let round = 0; round < rounds; round += 1) {
    const sends = [];
    for (let i = 0; i < 2 + Math.round(2 * Math.sin(round / 3)) + (round % 2); i += 1) {
      sends.push(post('movie', { movie_id: 100 + i, title: titles[(round + i) % titles.length], action: i % 3 ? 'viewed' : 'rated', rating: 8 }));
    }
    if (round % 2 === 0) sends.push(post('user', { user_id: 200 + round, action: round % 4 ? 'logged_in' : 'registered' }));
    if (round % 3 === 0) sends.push(post('payment', { payment_id: unique + 10 + round, user_id: 200 + round, amount: 4.99 + round, status: round % 9 ? 'completed' : 'pending' }));
    await Promise.all(sends);
    // Spreads the events over a few seconds of the chart; nothing is waited for here.
    await new Promise((resolve) => setTimeout(resolve, 800));
  }
  // And the form's answer to a stored event, rather than the refusal of the last check.
  await page.click('#send-button');
  await waitInPage(page, 'the form shows a 201',
    () => document.getElementById('send-result').dataset.status === '201');
  await page.evaluate(() => document.activeElement.blur());
  const { answer: stats } = await api('api/events/stats');
  await waitInPage(page, 'the counters catch up with the sample events',
    (total) => Number(document.getElementById('count-total').dataset.value) >= total, stats.processed_total);
  await waitInPage(page, 'the consumers catch up', () =>
    [...document.querySelectorAll('#lag-body tr')].every((r) => r.dataset.lag === '0'), undefined, LAG_TIMEOUT_MS);
}

await main();
