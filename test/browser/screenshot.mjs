/*
 * test/browser/screenshot.mjs: the README's picture of the dashboard
 * (`test/browser/run.sh --screenshot` writes docs/dashboard.png). Seeds
 * demo data that looks like a working system: five queues, one paused,
 * jobs waiting, scheduled, retrying and failed with real-looking errors,
 * workers running slow jobs, recurring jobs, and an hour of throughput
 * (written into qml.throughput_minutes, the scheduler's per-minute
 * roll-up, as an hour of traffic would have left it).
 */
import { join } from 'node:path';
import { OUT, DB_URL, sql, freePort, startQml, stopAll, startDashboard, launchBrowser } from './lib.mjs';

const target = process.argv[2] || join(OUT, 'dashboard.png');
const log = [];

sql(`
	INSERT INTO qml.throughput_minutes (minute, queue, enqueued, succeeded, failed)
	SELECT date_trunc('minute', now()) - m * interval '1 minute', q.name,
		   0,
		   round(q.scale * (1.6 + sin(m / 7.0) + 0.5 * sin(m / 2.3 + q.phase)))::bigint,
		   CASE WHEN m % q.every = 0 THEN q.scale / 4 * (1 + m % 3)
				WHEN m BETWEEN 21 AND 26 AND q.name = 'webhooks' THEN 60 + 40 * (m % 3)
				ELSE m % 3 END
	  FROM generate_series(1, 60) m,
		   (VALUES ('mail', 210, 0.0, 9), ('webhooks', 140, 1.0, 5), ('default', 90, 2.0, 13),
				   ('reports', 12, 3.0, 29)) q(name, scale, phase, every);
	SELECT qml.pause_queue('billing');
	SELECT count(*) FROM (SELECT qml.enqueue('invoice.render', jsonb_build_object('invoice', 'INV-' || (4100 + i)), 'billing') FROM generate_series(1, 38) i) s;
	SELECT count(*) FROM (SELECT qml.enqueue('email.send', jsonb_build_object('to', 'customer' || i || '@example.com', 'template', 'receipt'), 'mail') FROM generate_series(1, 240) i) s;
	SELECT count(*) FROM (SELECT qml.enqueue('webhook.deliver', jsonb_build_object('endpoint', 'https://hooks.example.com/orders', 'event', 'order.paid', 'order', 88000 + i), 'webhooks') FROM generate_series(1, 85) i) s;
	SELECT count(*) FROM (SELECT qml.enqueue('report.build', jsonb_build_object('report', 'weekly-sales', 'region', r), 'reports', run_at => now() + interval '40 minutes') FROM unnest(array['emea', 'apac', 'amer']) r) s;
	SELECT count(*) FROM (SELECT qml.enqueue('report.build', jsonb_build_object('report', 'inventory', 'warehouse', i), 'reports') FROM generate_series(1, 6) i) s;
	SELECT count(*) FROM (SELECT qml.enqueue('image.resize', jsonb_build_object('upload', 5500 + i, 'sizes', jsonb_build_array(64, 256, 1024))) FROM generate_series(1, 400) i) s;
`);
/* a history of finished work: fetch and complete, some fail */
sql(`SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.fetch('image-worker-1', '{default}', 350)), 'image-worker-1')`);
sql(`
	SELECT count(*) FROM (SELECT qml.enqueue('webhook.deliver', jsonb_build_object('endpoint', 'https://partner.example.net/hook', 'order', 87000 + i), 'webhooks', max_attempts => 5, backoff_base => '20 minutes') FROM generate_series(1, 6) i) s;
	SELECT qml.fail(j.id, 'webhook-worker-a', 'HTTP 503 from https://partner.example.net/hook: Service Unavailable') FROM qml.fetch('webhook-worker-a', '{webhooks}', 91) j WHERE j.arguments ? 'endpoint' AND j.arguments->>'endpoint' LIKE '%partner%';
	SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.jobs WHERE state = 'processing' AND queue = 'webhooks'), 'webhook-worker-a');
	SELECT count(*) FROM (SELECT qml.enqueue('email.send', jsonb_build_object('to', 'bounce' || i || '@invalid.example'), 'mail', max_attempts => 1) FROM generate_series(1, 4) i) s;
`);
sql(`
	SELECT qml.fail(id, 'mail-worker-2', 'SMTP 550 5.1.1 <' || (arguments->>'to') || '>: recipient address rejected', false) FROM qml.fetch('mail-worker-2', '{mail}', 244) WHERE arguments->>'to' LIKE 'bounce%';
	SELECT count(*) FROM qml.complete_batch(ARRAY(SELECT id FROM qml.jobs WHERE state = 'processing' AND queue = 'mail'), 'mail-worker-2');
`);
sql(`
	SELECT count(*) FROM (SELECT qml.enqueue('email.send', jsonb_build_object('to', 'customer' || i || '@example.com', 'template', 'welcome'), 'mail') FROM generate_series(241, 372) i) s;
	SELECT qml.enqueue('report.build', '{"report": "quarterly-close", "year": 2026}', 'reports');
	SELECT qml.fail(id, 'reports-worker-1', E'ERROR:  canceling statement due to statement timeout\\nCONTEXT:  SQL statement "SELECT sum(amount) FROM ledger WHERE ..."', false) FROM qml.fetch('reports-worker-1', '{reports}', 1) WHERE arguments->>'report' = 'quarterly-close';
	SELECT qml.add_recurring('nightly-sales-report', '0 3 * * *', 'report.build', '{"report": "daily-sales"}', 'reports');
	SELECT qml.add_recurring('purge-expired-sessions', '*/15 * * * *', 'sessions.purge', '[]', 'default');
	SELECT qml.add_recurring('monday-invoices', '0 9 * * 1', 'invoice.batch', '[]', 'billing', timezone => 'Europe/Berlin');
`);
/* workers running slow jobs, so that some are running */
startQml(['-d', DB_URL, 'worker', '--queues', 'reports', '--exec', 'report.build=sleep 120', '--workers', '3',
	'--name', 'reports-worker-1'], log);
startQml(['-d', DB_URL, 'worker', '--queues', 'webhooks', '--exec', 'webhook.deliver=sleep 0.7', '--workers', '2', '--batch', '2',
	'--name', 'webhook-worker-a'], log);
startQml(['-d', DB_URL, 'worker', '--queues', 'mail', '--exec', 'email.send=sleep 1.5', '--workers', '4', '--batch', '4',
	'--name', 'mail-worker-2'], log);

const port = await freePort();
const browser = await launchBrowser();
try {
	await startDashboard(port, 'demo-token', log);
	await new Promise((r) => setTimeout(r, 9000));	/* the workers get going */
	const page = await browser.newPage({ viewport: { width: 1280, height: 1110 } });
	await page.goto(`http://127.0.0.1:${port}/`);
	await page.waitForSelector('body[data-conn="live"]');
	await page.waitForSelector('#running tbody tr');
	await page.click('#state-tabs .tab[data-state="failed"]');
	await page.waitForTimeout(3000);
	await page.screenshot({ path: target, animations: 'disabled' });
	console.log(`wrote ${target}`);
} finally {
	await browser.close();
	await stopAll();
}
