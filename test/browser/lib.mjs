/*
 * test/browser/lib.mjs: what test.mjs and screenshot.mjs share: psql, a
 * free port, `qml` child processes (the dashboard among them), and
 * Debian's chromium through playwright-core. run.sh sets QML, CHROMIUM,
 * QML_TEST_DB_URL, QML_TEST_OUTPUT and PG*.
 */
import { chromium } from 'playwright-core';
import { execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:net';

export const QML = process.env.QML;
export const DB_URL = process.env.QML_TEST_DB_URL;
export const OUT = process.env.QML_TEST_OUTPUT;

/* psql on the test database: one value per line */
export function sql(query) {
	return execFileSync('psql', ['-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-c', query],
		{ encoding: 'utf8' }).trim();
}

export function freePort() {
	return new Promise((resolve, reject) => {
		const s = createServer();
		s.listen(0, '127.0.0.1', () => {
			const { port } = s.address();
			s.close(() => resolve(port));
		});
		s.on('error', reject);
	});
}

const children = new Set();
/* qml ARGS..., its output appended to the array log */
export function startQml(args, log) {
	const child = spawn(QML, args, { stdio: ['ignore', 'pipe', 'pipe'] });
	child.stdout.on('data', (d) => log.push(String(d)));
	child.stderr.on('data', (d) => log.push(String(d)));
	children.add(child);
	child.on('exit', () => children.delete(child));
	return child;
}
export function stopChild(child, signal = 'SIGTERM') {
	return new Promise((resolve) => {
		if (child.exitCode !== null || child.signalCode !== null) return resolve();
		child.once('exit', () => resolve());
		child.kill(signal);
	});
}
export async function stopAll() {
	for (const c of [...children]) await stopChild(c, 'SIGKILL');
}

/* `qml dashboard` on 127.0.0.1:port, healthy before it returns */
export async function startDashboard(port, token, log) {
	const args = ['dashboard', '--listen', `127.0.0.1:${port}`, '--database', DB_URL];
	if (token) args.push('--token', token);
	const child = startQml(args, log);
	const until = Date.now() + 15000;
	while (Date.now() < until) {
		try {
			if ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200) return child;
		} catch (e) { /* not up yet */ }
		if (child.exitCode !== null) break;
		await new Promise((r) => setTimeout(r, 100));
	}
	throw new Error(`dashboard not healthy: ${log.join('').slice(-500)}`);
}

export function launchBrowser() {
	return chromium.launch({
		executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
		headless: true,
		args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
			'--disable-background-networking', '--disable-component-update', '--no-first-run'],
	});
}
