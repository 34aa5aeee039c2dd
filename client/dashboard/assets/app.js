/*
 * app.js: the qml dashboard page's behaviour. Owns the live connection
 * (a WebSocket to /ws, with polling of the REST API as the fallback and
 * reconnection with backoff), the rendering of every panel, the job view,
 * the write actions and the token they need.
 *
 * Every value from the server reaches the page through textContent (the
 * el() helper below); nothing is ever written with innerHTML, so a job whose
 * fields hold markup shows it as text.
 *
 * What each open page costs the database: the totals, the queues and the
 * chart come from the server's one poller over the WebSocket (nothing per
 * page). The lists (running jobs, the first page of the job list, an open
 * unfinished job) are re-read over REST only while the page is visible and
 * only after the stats changed, at most every DETAIL_MS; recurring jobs
 * every RECURRING_MS.
 */
'use strict';

(() => {
	const STATES = [
		['enqueued', 'waiting'], ['processing', 'running'], ['scheduled', 'scheduled'],
		['awaiting_retry', 'retrying'], ['failed', 'failed'], ['succeeded', 'succeeded'],
		['deleted', 'deleted'],
	];
	const STATE_LABEL = Object.fromEntries(STATES);
	const FINISHED = new Set(['succeeded', 'failed', 'deleted']);
	const POLL_MS = 3000;			/* REST polling while the socket is down */
	const DETAIL_MS = 2500;			/* lists re-read at most this often */
	const RECURRING_MS = 30000;
	const THROUGHPUT_POLL_MS = 15000;
	const BACKOFF_MAX_MS = 15000;
	const PAGE_SIZE = 50;
	const TOKEN_KEY = 'qml.dashboard.token';

	const $ = (id) => document.getElementById(id);

	/* el('td', {className: 'num'}, 'text', node...): children as text nodes */
	function el(tag, props, ...children) {
		const node = document.createElement(tag);
		if (props) {
			for (const [k, v] of Object.entries(props)) {
				if (v === undefined || v === null) continue;
				if (k === 'dataset') Object.assign(node.dataset, v);
				else if (k === 'className' || k === 'title' || k === 'type' || k === 'hidden')
					node[k] = v;
				else node.setAttribute(k, String(v));
			}
		}
		for (const c of children) {
			if (c === undefined || c === null) continue;
			node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)));
		}
		return node;
	}
	function setText(node, text) {
		const t = text === undefined || text === null ? '' : String(text);
		if (node.textContent !== t) node.textContent = t;
	}

	/* ---------- formatting ---------- */

	let serverSkewMs = 0;			/* server clock minus ours, from stats.at */
	const now = () => Date.now() + serverSkewMs;

	/* PostgreSQL text ("2026-12-06 21:00:00.123456+00") or ISO 8601 */
	function parseTs(s) {
		if (s === null || s === undefined || s === '') return null;
		const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d(?::?\d\d)?)?$/.exec(String(s));
		if (!m) {
			const t = Date.parse(s);
			return Number.isNaN(t) ? null : t;
		}
		let zone = m[4] || 'Z';
		if (/^[+-]\d\d$/.test(zone)) zone += ':00';
		else if (/^[+-]\d{4}$/.test(zone)) zone = zone.slice(0, 3) + ':' + zone.slice(3);
		const frac = m[3] ? m[3].slice(0, 4).padEnd(4, '0') : '';
		const t = Date.parse(`${m[1]}T${m[2]}${frac}${zone}`);
		return Number.isNaN(t) ? null : t;
	}
	function duration(sec) {
		if (sec === null || sec === undefined || Number.isNaN(sec)) return '—';
		sec = Math.max(0, sec);
		if (sec < 1) return `${Math.round(sec * 1000)} ms`;
		if (sec < 60) return `${Math.floor(sec)} s`;
		if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.floor(sec % 60)} s`;
		if (sec < 86400) return `${Math.floor(sec / 3600)} h ${Math.floor(sec % 3600 / 60)} min`;
		return `${Math.floor(sec / 86400)} d ${Math.floor(sec % 86400 / 3600)} h`;
	}
	function relative(t) {
		if (t === null) return '—';
		const sec = (now() - t) / 1000;
		if (Math.abs(sec) < 1) return 'just now';
		const short = duration(Math.abs(sec)).replace(/ \d+ (s|min|h)$/, '');
		return sec > 0 ? `${short} ago` : `in ${short}`;
	}
	function absolute(t) {
		return t === null ? '' : new Date(t).toLocaleString();
	}
	const fmtInt = (n) => (n === null || n === undefined ? '—' : Number(n).toLocaleString('en-US'));
	function fmtRate(x) {
		if (x === null || x === undefined) return '—';
		return x >= 100 ? Math.round(x).toLocaleString('en-US') : x.toFixed(x >= 10 ? 1 : 2);
	}
	function json(v) {
		if (v === null || v === undefined) return '—';
		return JSON.stringify(v, null, 2);
	}
	/* a time cell that the clock keeps current: "3 s ago", full time on hover */
	function timeNode(ts, tag = 'span') {
		const t = parseTs(ts);
		const node = el(tag, { title: absolute(t) }, relative(t));
		if (t !== null) node.dataset.ts = String(t);
		return node;
	}
	function stateBadge(state) {
		return el('span', { className: `state s-${state}` }, STATE_LABEL[state] || state);
	}

	/* ---------- messages ---------- */

	let toastTimer = 0;
	function toast(text, kind) {
		const t = $('toast');
		setText(t, text);
		t.dataset.kind = kind || 'info';
		t.hidden = false;
		clearTimeout(toastTimer);
		toastTimer = setTimeout(() => { t.hidden = true; }, 4000);
	}

	/* ---------- the REST API and the token ---------- */

	let token = sessionStorage.getItem(TOKEN_KEY) || '';

	/*
	 * JSON with the integers a double cannot hold exactly (beyond 2^53) kept
	 * as strings: job ids are bigint, and JSON.parse would read job
	 * 9007199254740993 as 9007199254740992, so the list would open, and
	 * Delete act on, another job. Strings are skipped as they are.
	 */
	const NUMBER = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
	function parseJson(text) {
		let out = '';
		let from = 0;
		for (let i = 0; i < text.length;) {
			const c = text[i];
			if (c === '"') {
				for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
				i++;
			} else if (c === '-' || (c >= '0' && c <= '9')) {
				NUMBER.lastIndex = i;
				const m = NUMBER.exec(text);
				const n = m ? m[0] : c;
				if (/^-?\d+$/.test(n) && !Number.isSafeInteger(Number(n))) {
					out += `${text.slice(from, i)}"${n}"`;
					from = i + n.length;
				}
				i += n.length;
			} else i++;
		}
		return JSON.parse(out + text.slice(from));
	}

	async function api(path, method = 'GET') {
		const headers = { Accept: 'application/json' };
		if (method !== 'GET' && token) headers.Authorization = `Bearer ${token}`;
		const res = await fetch(path, { method, headers, cache: 'no-store' });
		let body = null;
		try { body = parseJson(await res.text()); } catch (e) { body = null; }
		return { status: res.status, ok: res.ok, body: body || {} };
	}

	/* a write action: asks for the token once on 401/403, then retries */
	async function write(path) {
		let res;
		try {
			res = await api(path, 'POST');
		} catch (e) {
			toast('The dashboard cannot be reached.', 'error');
			return null;
		}
		const readOnly = res.status === 403 && /^read-only/.test(res.body.error || '');
		if ((res.status === 401 || res.status === 403) && !readOnly) {
			const wrong = res.status === 403 && token !== '';
			if (!(await askToken(wrong ? 'That token was refused.' : ''))) return null;
			return write(path);
		}
		if (!res.ok) {
			toast(res.body.error || `Failed (HTTP ${res.status}).`, 'error');
			return null;
		}
		return res.body;
	}

	let tokenResolve = null;
	function askToken(error) {
		const dlg = $('token-dialog');
		setText($('token-error'), error);
		$('token-error').hidden = !error;
		$('token-input').value = '';
		dlg.hidden = false;
		$('token-input').focus();
		return new Promise((resolve) => { tokenResolve = resolve; });
	}
	function closeTokenDialog(ok) {
		$('token-dialog').hidden = true;
		if (tokenResolve) tokenResolve(ok);
		tokenResolve = null;
	}
	function showTokenState() {
		setText($('token-button'), token ? 'token set' : 'no token');
		$('token-button').title = token
			? 'Write actions send the token. Click to forget it.'
			: 'Write actions will ask for the token.';
	}
	function setupToken() {
		$('token-form').addEventListener('submit', (ev) => {
			ev.preventDefault();
			token = $('token-input').value.trim();
			if (!token) return;
			sessionStorage.setItem(TOKEN_KEY, token);
			showTokenState();
			closeTokenDialog(true);
		});
		$('token-cancel').addEventListener('click', () => closeTokenDialog(false));
		$('token-button').addEventListener('click', () => {
			if (token) {
				token = '';
				sessionStorage.removeItem(TOKEN_KEY);
				showTokenState();
				toast('Token forgotten for this tab.');
			} else {
				askToken('');
			}
		});
		showTokenState();
	}

	/* ---------- keyed rows: update in place so that clicks are not lost ---------- */

	function syncRows(tbody, items, key, build, update) {
		const rows = new Map();
		for (const tr of tbody.rows) rows.set(tr.dataset.key, tr);
		let prev = null;
		for (const item of items) {
			const k = String(key(item));
			let tr = rows.get(k);
			if (tr) rows.delete(k);
			else {
				tr = build(item);
				tr.dataset.key = k;
			}
			update(tr, item);
			const want = prev ? prev.nextSibling : tbody.firstChild;
			if (want !== tr) tbody.insertBefore(tr, want);
			prev = tr;
		}
		for (const tr of rows.values()) tr.remove();
	}
	function cells(tr, n) {
		while (tr.cells.length < n) tr.appendChild(el('td'));
		return tr.cells;
	}
	function numCell(td, n) {
		td.className = n ? 'num' : 'num zero';
		setText(td, fmtInt(n));
	}

	/* ---------- totals and queues (from stats) ---------- */

	let stats = null;
	let statsKey = '';
	let statsVersion = 0;			/* bumps whenever the stats changed */

	function buildTotals() {
		const ul = $('totals');
		for (const [state, label] of STATES) {
			const b = el('button', { type: 'button', className: `card s-${state}`, dataset: { state } },
				el('span', { className: 'label' }, label), el('span', { className: 'value' }, '—'));
			b.addEventListener('click', () => selectState(state));
			ul.appendChild(el('li', null, b));
		}
	}

	function applyStats(data) {
		if (!data || !data.totals) return;
		const at = parseTs(data.at);
		if (at !== null) serverSkewMs = at - Date.now();
		const key = JSON.stringify([data.totals, data.queues]);
		if (key !== statsKey) {
			statsKey = key;
			statsVersion++;
		}
		stats = data;
		for (const card of document.querySelectorAll('#totals .card')) {
			const v = card.querySelector('.value');
			const text = fmtInt(data.totals[card.dataset.state] ?? 0);
			if (v.textContent !== text && v.textContent !== '—') {
				card.classList.remove('changed');
				void card.offsetWidth;		/* restart the flash animation */
				card.classList.add('changed');
			}
			setText(v, text);
		}
		for (const tab of document.querySelectorAll('#state-tabs .tab')) {
			const n = tab.dataset.state ? data.totals[tab.dataset.state] : null;
			setText(tab.querySelector('.n'), n === null || n === undefined ? '' : fmtInt(n));
		}
		renderQueues(data.queues || []);
		const lag = data.scheduler ? data.scheduler.lag_seconds : null;
		setText($('lag'), lag === null || lag === undefined ? '' : `scheduler lag ${duration(lag)}`);
		const upd = $('updated');
		upd.dataset.ts = String(now());
		upd.dataset.prefix = 'updated ';
		setText(upd, 'updated just now');
	}

	function renderQueues(queues) {
		const tbody = $('queues').tBodies[0];
		$('queues-empty').hidden = queues.length > 0;
		syncRows(tbody, queues, (q) => q.queue, (q) => {
			const tr = el('tr');
			const c = cells(tr, 10);
			const link = el('a', { href: '#' });
			link.addEventListener('click', (ev) => {
				ev.preventDefault();
				$('f-queue').value = tr.dataset.key;
				$('f-id').value = '';
				loadJobs(true);
			});
			c[0].appendChild(link);
			const btn = el('button', { type: 'button', className: 'small ghost' });
			btn.addEventListener('click', () => pauseQueue(tr.dataset.key, btn.dataset.action));
			c[9].appendChild(btn);
			return tr;
		}, (tr, q) => {
			const c = tr.cells;
			setText(c[0].firstChild, q.queue);
			numCell(c[1], q.enqueued);
			numCell(c[2], q.processing);
			numCell(c[3], q.scheduled);
			numCell(c[4], q.awaiting_retry);
			numCell(c[5], q.failed);
			c[6].className = 'num';
			setText(c[6], q.oldest_waiting_seconds === null || q.oldest_waiting_seconds === undefined
				? '—' : duration(q.oldest_waiting_seconds));
			c[7].className = 'num';
			setText(c[7], fmtRate(q.jobs_per_second));
			tr.classList.toggle('paused', !!q.paused);
			if (!c[8].firstChild) c[8].appendChild(el('span'));
			c[8].firstChild.className = q.paused ? 'pill paused' : 'pill';
			setText(c[8].firstChild, q.paused ? 'paused' : 'active');
			const btn = c[9].firstChild;
			btn.dataset.action = q.paused ? 'resume' : 'pause';
			setText(btn, q.paused ? 'Resume' : 'Pause');
		});
	}

	async function pauseQueue(queue, action) {
		const r = await write(`/api/queues/${encodeURIComponent(queue)}/${action}`);
		if (!r) return;
		toast(`Queue ${queue} ${action === 'pause' ? 'paused' : 'resumed'}.`);
		refreshStatsNow();
	}

	/* ---------- throughput chart ---------- */

	let chart = null;
	function cssVar(name) {
		return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
	}
	function applyThroughput(data) {
		if (!data || !Array.isArray(data.buckets)) return;
		if (typeof window.Chart !== 'function') {
			$('chart-missing').hidden = false;
			return;
		}
		const labels = data.buckets.map((b) => {
			const t = parseTs(b.at);
			return t === null ? '' : new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
		});
		const ok = data.buckets.map((b) => b.succeeded || 0);
		const bad = data.buckets.map((b) => b.failed || 0);
		if (!chart) {
			const grid = cssVar('--line');
			const text = cssVar('--muted');
			chart = new window.Chart($('chart'), {
				type: 'bar',
				data: {
					labels,
					datasets: [
						{ label: 'succeeded', data: ok, backgroundColor: cssVar('--succeeded'), stack: 's' },
						{ label: 'failed', data: bad, backgroundColor: cssVar('--failed'), stack: 's' },
					],
				},
				options: {
					animation: false,
					maintainAspectRatio: false,
					/* about one time label per 70 px, whatever the width */
					onResize: (c, size) => {
						c.options.scales.x.ticks.maxTicksLimit = Math.max(3, Math.floor(size.width / 70));
					},
					interaction: { mode: 'index', intersect: false },
					plugins: { legend: { position: 'bottom', labels: { color: text, boxWidth: 12 } } },
					scales: {
						x: { stacked: true, grid: { display: false }, ticks: { color: text, maxTicksLimit: Math.max(3, Math.floor($('chart').clientWidth / 70)), maxRotation: 0 } },
						y: { stacked: true, beginAtZero: true, grid: { color: grid }, ticks: { color: text, precision: 0 } },
					},
				},
			});
			return;
		}
		chart.data.labels = labels;
		chart.data.datasets[0].data = ok;
		chart.data.datasets[1].data = bad;
		chart.update('none');
	}

	/* ---------- rows of jobs: id, method, queue, then the table's own ---------- */

	/* a row builder for syncRows: n cells, a click opens the job */
	function jobRow(n) {
		return () => {
			const tr = el('tr');
			cells(tr, n);
			tr.tabIndex = 0;
			tr.addEventListener('click', () => openJob(tr.dataset.key));
			tr.addEventListener('keydown', (ev) => { if (ev.key === 'Enter') openJob(tr.dataset.key); });
			return tr;
		};
	}
	function jobCells(tr, j) {
		const c = tr.cells;
		c[0].className = 'num';
		setText(c[0], j.id);
		setText(c[1], j.method);
		setText(c[2], j.queue);
		return c;
	}

	/* ---------- running jobs ---------- */

	async function loadRunning() {
		const r = await api('/api/running');
		if (!r.ok) return;
		const jobs = r.body.jobs || [];
		const fetched = now();
		setText($('running-count'), jobs.length ? String(jobs.length) : '');
		$('running-empty').hidden = jobs.length > 0;
		syncRows($('running').tBodies[0], jobs, (j) => j.id, jobRow(5), (tr, j) => {
			const c = jobCells(tr, j);
			setText(c[3], j.locked_by ?? j.worker ?? '—');
			c[4].className = 'num';
			const started = j.elapsed_seconds !== undefined && j.elapsed_seconds !== null
				? fetched - j.elapsed_seconds * 1000 : parseTs(j.started_at);
			c[4].dataset.since = started === null ? '' : String(started);
			setText(c[4], started === null ? '—' : duration((now() - started) / 1000));
		});
		$('running').classList.add('clickable');
	}

	/* ---------- recurring jobs ---------- */

	async function loadRecurring() {
		const r = await api('/api/recurring');
		if (!r.ok) return;
		const list = r.body.recurring || [];
		$('recurring-empty').hidden = list.length > 0;
		syncRows($('recurring').tBodies[0], list, (x) => x.name, (x) => {
			const tr = el('tr');
			const c = cells(tr, 7);
			const btn = el('button', { type: 'button', className: 'small ghost' }, 'Run now');
			btn.addEventListener('click', () => runRecurring(tr.dataset.key, btn));
			c[6].appendChild(btn);
			return tr;
		}, (tr, x) => {
			const c = tr.cells;
			setText(c[0], x.name);
			c[1].className = 'mono';
			setText(c[1], x.cron ?? x.schedule ?? '');
			setText(c[2], x.method);
			setText(c[3], x.queue);
			c[4].replaceChildren(x.paused ? el('span', { className: 'pill paused' }, 'paused') : timeNode(x.next_run));
			c[5].replaceChildren(x.last_run ? timeNode(x.last_run) : el('span', { className: 'muted' }, 'never'));
		});
	}

	async function runRecurring(name, btn) {
		btn.disabled = true;
		try {
			const r = await write(`/api/recurring/${encodeURIComponent(name)}/run`);
			if (r) {
				toast(`${name}: enqueued job ${r.id}.`);
				refreshStatsNow();
			}
		} finally {
			btn.disabled = false;
		}
	}

	/* ---------- the job list ---------- */

	let listState = '';			/* '' = every state */
	let cursors = [null];			/* `after` of each page seen, for Previous */
	let nextCursor = null;
	let listSeq = 0;

	function buildTabs() {
		const tabs = $('state-tabs');
		for (const [state, label] of [['', 'all'], ...STATES]) {
			const b = el('button', {
				type: 'button', className: `tab${state ? ` s-${state}` : ''}`, role: 'tab',
				dataset: { state },
			}, label, el('span', { className: 'n' }));
			b.setAttribute('aria-selected', String(state === listState));
			b.addEventListener('click', () => selectState(state));
			tabs.appendChild(b);
		}
	}
	function selectState(state) {
		listState = state;
		for (const t of document.querySelectorAll('#state-tabs .tab'))
			t.setAttribute('aria-selected', String(t.dataset.state === state));
		loadJobs(true);
		$('h-jobs').scrollIntoView({ block: 'nearest' });
	}

	function listQuery(after) {
		const p = new URLSearchParams();
		if (listState) p.set('state', listState);
		for (const f of ['id', 'method', 'queue']) {
			const v = $(`f-${f}`).value.trim();
			if (v) p.set(f, v);
		}
		p.set('limit', String(PAGE_SIZE));
		if (after !== null && after !== undefined) p.set('after', String(after));
		return `/api/jobs?${p}`;
	}

	/* background: a refresh of the same page, which says nothing on failure */
	async function loadJobs(reset, background) {
		if (reset) cursors = [null];
		const id = $('f-id').value.trim();
		if (id && !/^\d+$/.test(id)) {
			if (!background) toast('An id is a whole number.', 'error');
			return;
		}
		const seq = ++listSeq;
		let r;
		try {
			r = await api(listQuery(cursors[cursors.length - 1]));
		} catch (e) {
			return;
		}
		if (seq !== listSeq) return;		/* a newer request is on its way */
		if (!r.ok) {
			if (!background) toast(r.body.error || `Job list failed (HTTP ${r.status}).`, 'error');
			return;
		}
		const jobs = r.body.jobs || [];
		nextCursor = r.body.next ?? null;
		$('jobs-empty').hidden = jobs.length > 0;
		syncRows($('jobs').tBodies[0], jobs, (j) => j.id, jobRow(8), (tr, j) => {
			const c = jobCells(tr, j);
			if (c[3].dataset.v !== j.state) {
				c[3].dataset.v = j.state;
				c[3].replaceChildren(stateBadge(j.state));
			}
			c[4].className = 'num';
			setText(c[4], `${j.attempts}/${j.max_attempts}`);
			c[5].replaceChildren(timeNode(j.created_at));
			c[6].replaceChildren(j.finished_at ? timeNode(j.finished_at) : '');
			c[7].className = 'err';
			setText(c[7], j.last_error ? String(j.last_error).split('\n')[0] : '');
			c[7].title = j.last_error || '';
		});
		$('page-next').disabled = nextCursor === null;
		$('page-first').disabled = cursors.length === 1;
		setText($('page-info'), `page ${cursors.length}${jobs.length ? `, ${jobs.length} job${jobs.length === 1 ? '' : 's'}` : ''}`);
	}

	function setupJobList() {
		buildTabs();
		$('filters').addEventListener('submit', (ev) => {
			ev.preventDefault();
			loadJobs(true);
		});
		$('f-clear').addEventListener('click', () => {
			for (const f of ['id', 'method', 'queue']) $(`f-${f}`).value = '';
			loadJobs(true);
		});
		$('page-next').addEventListener('click', () => {
			if (nextCursor === null) return;
			cursors.push(nextCursor);
			loadJobs(false);
		});
		$('page-first').addEventListener('click', () => loadJobs(true));
	}

	/* ---------- the job view ---------- */

	let openId = null;
	let openJobData = null;
	let deleteArmed = 0;

	function openJob(id) {
		if (location.hash !== `#job/${id}`) location.hash = `job/${id}`;
		else showJob(id);
	}
	function closeJob() {
		openId = null;
		openJobData = null;
		$('job-view').hidden = true;
		if (location.hash) history.replaceState(null, '', location.pathname + location.search);
	}
	function routeHash() {
		const m = /^#job\/(\d+)$/.exec(location.hash);
		if (m) showJob(m[1]);
		else if (openId !== null) closeJob();
	}

	async function showJob(id, quiet) {
		openId = String(id);
		const view = $('job-view');
		view.hidden = false;
		if (!quiet) {
			setText($('jv-title'), `Job ${id}`);
			$('jv-message').hidden = true;
		}
		let r;
		try {
			r = await api(`/api/jobs/${encodeURIComponent(id)}`);
		} catch (e) {
			return;
		}
		if (openId !== String(id)) return;
		if (!r.ok) {
			renderJob(null, []);
			message(r.status === 404 ? `Job ${id} does not exist (or was pruned).`
				: r.body.error || `HTTP ${r.status}`, 'error');
			return;
		}
		renderJob(r.body.job, r.body.events || []);
	}

	function message(text, kind) {
		const m = $('jv-message');
		setText(m, text);
		m.dataset.kind = kind || 'info';
		m.hidden = !text;
	}

	function renderJob(job, events) {
		/* the live refresh of the same job keeps a first Delete click armed */
		const sameJob = openJobData && job && String(openJobData.id) === String(job.id);
		openJobData = job;
		const fields = $('jv-fields');
		fields.replaceChildren();
		$('jv-retry').disabled = !job || !FINISHED.has(job.state);
		$('jv-delete').disabled = !job || FINISHED.has(job.state);
		if (!sameJob || $('jv-delete').disabled) disarmDelete();
		if (!job) {
			$('jv-state').replaceChildren();
			for (const id of ['jv-arguments', 'jv-result', 'jv-error']) setText($(id), '');
			$('jv-events').tBodies[0].replaceChildren();
			return;
		}
		setText($('jv-title'), `Job ${job.id}`);
		$('jv-state').replaceChildren(stateBadge(job.state));
		const add = (label, value) => {
			fields.appendChild(el('dt', null, label));
			fields.appendChild(el('dd', null, value === null || value === undefined || value === '' ? '—' : value));
		};
		const when = (ts) => (ts ? el('span', null, timeNode(ts), el('span', { className: 'muted' }, `  ${absolute(parseTs(ts))}`)) : null);
		add('method', el('span', { className: 'mono' }, job.method));
		add('queue', job.queue);
		add('state', job.state);
		add('priority', job.priority);
		add('attempts', `${job.attempts} of ${job.max_attempts}`);
		add('created', when(job.created_at));
		add('run at', when(job.run_at));
		add('enqueued', when(job.enqueued_at));
		add('started', when(job.started_at));
		add('finished', when(job.finished_at));
		add('worker', job.locked_by);
		add('lease until', when(job.locked_until));
		add('unique key', job.unique_key);
		setText($('jv-arguments'), json(job.arguments));
		setText($('jv-result'), json(job.result));
		setText($('jv-error'), job.last_error || '—');
		const tbody = $('jv-events').tBodies[0];
		tbody.replaceChildren(...events.map((e) => el('tr', null,
			el('td', null, timeNode(e.at)),
			el('td', null, e.from_state ? stateBadge(e.from_state) : '—'),
			el('td', null, e.to_state ? stateBadge(e.to_state) : '—'),
			el('td', null, e.worker || ''),
			el('td', { className: 'wrap error-text' }, e.error || ''))));
		if (!events.length)
			tbody.appendChild(el('tr', null, el('td', { className: 'muted', colspan: 5 }, 'No history kept for this job.')));
	}

	function disarmDelete() {
		clearTimeout(deleteArmed);
		deleteArmed = 0;
		$('jv-delete').classList.remove('confirm');
		setText($('jv-delete'), 'Delete');
	}

	function setupJobView() {
		$('jv-close').addEventListener('click', closeJob);
		document.addEventListener('keydown', (ev) => {
			if (ev.key === 'Escape' && $('token-dialog').hidden && openId !== null) closeJob();
		});
		window.addEventListener('hashchange', routeHash);
		$('home').addEventListener('click', (ev) => {
			ev.preventDefault();
			closeJob();
		});
		$('jv-retry').addEventListener('click', async () => {
			const id = openId;
			if (id === null) return;
			$('jv-retry').disabled = true;
			const r = await write(`/api/jobs/${id}/retry`);
			if (r) message(`Job ${id} was enqueued again.`);
			else $('jv-retry').disabled = false;
			if (openId === id) await showJob(id, true);
			refreshStatsNow();
		});
		/* no window.confirm: a second click within 4 s confirms */
		$('jv-delete').addEventListener('click', async () => {
			const id = openId;
			if (id === null) return;
			if (!deleteArmed) {
				$('jv-delete').classList.add('confirm');
				setText($('jv-delete'), 'Click again to delete');
				deleteArmed = setTimeout(disarmDelete, 4000);
				return;
			}
			disarmDelete();
			const r = await write(`/api/jobs/${id}/delete`);
			if (r) message(`Job ${id} was deleted.`);
			if (openId === id) await showJob(id, true);
			refreshStatsNow();
		});
	}

	/* ---------- live: WebSocket, polling fallback, reconnection ---------- */

	let ws = null;
	let wsLive = false;
	let wsLost = false;			/* the socket closed once: banner, polling */
	let backoffMs = 1000;
	let reconnectAt = 0;
	let reconnectTimer = 0;
	let pollTimer = 0;
	let dbUp = true;
	let serverReachable = true;
	let lastThroughputPoll = 0;

	function setConn(state, text) {
		const c = $('conn');
		c.dataset.state = state;
		setText(c, text);
		document.body.dataset.conn = state;
	}

	function renderBanner() {
		const b = $('banner');
		let text = '';
		let kind = 'warn';
		if (!serverReachable) {
			text = 'The dashboard cannot be reached.';
			kind = 'down';
		} else if (!dbUp) {
			text = 'The database is unavailable; the dashboard is reconnecting to it. Numbers below may be stale.';
			kind = 'down';
		}
		if (!wsLive && wsLost) {
			const secs = Math.max(0, Math.ceil((reconnectAt - Date.now()) / 1000));
			const again = reconnectTimer ? (secs > 0 ? `reconnecting in ${secs} s` : 'reconnecting…') : 'connecting…';
			text = `${text ? `${text} ` : ''}Live updates lost: polling every ${POLL_MS / 1000} s, ${again}`;
		}
		b.dataset.kind = kind;
		setText(b, text);
		b.hidden = text === '';
	}

	function connect() {
		reconnectTimer = 0;
		const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/ws`;
		let sock;
		try {
			sock = new WebSocket(url);
		} catch (e) {
			scheduleReconnect();
			return;
		}
		ws = sock;
		sock.addEventListener('open', () => {
			if (ws !== sock) return;
			wsLive = true;
			serverReachable = true;
			backoffMs = 1000;
			stopPolling();
			setConn(dbUp ? 'live' : 'db-down', dbUp ? 'live' : 'live, database down');
			renderBanner();
		});
		sock.addEventListener('message', (ev) => {
			if (ws !== sock) return;
			let msg;
			try { msg = parseJson(ev.data); } catch (e) { return; }
			if (msg.type === 'stats') applyStats(msg.data);
			else if (msg.type === 'throughput') applyThroughput(msg.data);
			else if (msg.type === 'db') {
				dbUp = !!msg.up;
				setConn(dbUp ? 'live' : 'db-down', dbUp ? 'live' : 'live, database down');
				renderBanner();
			}
		});
		sock.addEventListener('close', () => {
			if (ws !== sock) return;
			ws = null;
			wsLive = false;
			wsLost = true;
			setConn('polling', 'polling');
			startPolling();
			scheduleReconnect();
		});
	}

	function scheduleReconnect() {
		clearTimeout(reconnectTimer);
		const delay = backoffMs + Math.floor(Math.random() * 300);
		backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
		reconnectAt = Date.now() + delay;
		reconnectTimer = setTimeout(connect, delay);
		renderBanner();
	}

	function startPolling() {
		if (!pollTimer) {
			pollOnce();
			pollTimer = setInterval(pollOnce, POLL_MS);
		}
	}
	function stopPolling() {
		clearInterval(pollTimer);
		pollTimer = 0;
	}
	async function pollOnce() {
		try {
			const r = await api('/api/stats');
			serverReachable = true;
			dbUp = r.status !== 503;
			if (r.ok) applyStats(r.body);
			if (r.ok && Date.now() - lastThroughputPoll > THROUGHPUT_POLL_MS) {
				lastThroughputPoll = Date.now();
				const t = await api('/api/throughput?minutes=60');
				if (t.ok) applyThroughput(t.body);
			}
		} catch (e) {
			serverReachable = false;
		}
		if (!wsLive && wsLost) setConn(serverReachable ? 'polling' : 'down', serverReachable ? 'polling' : 'offline');
		renderBanner();
	}
	/* after a write: the socket brings the change; without it, ask now */
	function refreshStatsNow() {
		if (!wsLive) pollOnce();
		detailDue = 0;
	}

	/* ---------- the lists' cadence and the clock ---------- */

	let detailVersion = -1;
	let detailDue = 0;
	let recurringDue = 0;

	async function detailTick() {
		if (document.hidden) return;
		const t = Date.now();
		if (t >= recurringDue) {
			recurringDue = t + RECURRING_MS;
			loadRecurring().catch(() => {});
		}
		if (statsVersion === detailVersion || t < detailDue) return;
		detailVersion = statsVersion;
		detailDue = t + DETAIL_MS;
		loadRunning().catch(() => {});
		if (cursors.length === 1) loadJobs(false, true).catch(() => {});
		if (openId !== null && openJobData && !FINISHED.has(openJobData.state))
			showJob(openId, true).catch(() => {});
	}

	function clockTick() {
		for (const node of document.querySelectorAll('[data-ts]')) {
			const t = Number(node.dataset.ts);
			setText(node, (node.dataset.prefix || '') + relative(t));
		}
		for (const td of document.querySelectorAll('#running td[data-since]')) {
			const s = Number(td.dataset.since);
			if (td.dataset.since !== '') setText(td, duration((now() - s) / 1000));
		}
		if (!wsLive) renderBanner();
	}

	/* ---------- start ---------- */

	function start() {
		buildTotals();
		setupToken();
		setupJobList();
		setupJobView();
		setConn('connecting', 'connecting…');
		pollOnce();				/* first paint without waiting for the socket */
		api('/api/throughput?minutes=60').then((t) => { if (t.ok) applyThroughput(t.body); }).catch(() => {});
		loadJobs(true).catch(() => {});
		loadRunning().catch(() => {});
		recurringDue = Date.now() + RECURRING_MS;
		loadRecurring().catch(() => {});
		connect();
		routeHash();
		setInterval(detailTick, 500);
		setInterval(clockTick, 1000);
		document.addEventListener('visibilitychange', () => { if (!document.hidden) detailDue = 0; });
	}

	if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
	else start();
})();
