// The coordinator dashboard's pages: each polls its JSON under /api (see
// server/dashboard.h for the shapes) every POLL_MS and redraws. Text from
// the server is only ever set as textContent.
'use strict';

const POLL_MS = 2000;
const COLORS = ['#2f7ae5', '#e5572f', '#1a9e5c', '#8e44ad', '#d4a017', '#16a2b8', '#7f8c8d'];
const token = new URLSearchParams(location.search).get('token');

// `path` with the page's ?token= carried over.
function withToken(path) {
  if (!token) return path;
  return path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
}

// POSTs the one action there is: cancelling `id`. The token goes in the
// Authorization header (the server takes no ?token= for an action).
async function cancelJob(id) {
  const headers = {'X-Ist-Action': 'cancel'};
  if (token) headers.Authorization = 'Bearer ' + token;
  const response = await fetch('/api/job/' + encodeURIComponent(id) + '/cancel',
                               {method: 'POST', headers, cache: 'no-store'});
  if (!response.ok) throw new Error('cancel: ' + response.status + ' ' + (await response.text()));
  return response.json();
}

async function api(path) {
  const response = await fetch(withToken(path), {cache: 'no-store'});
  if (!response.ok) throw new Error(path + ': ' + response.status + ' ' + (await response.text()));
  return response.json();
}

function setStatus(text, error) {
  const status = document.getElementById('status');
  status.textContent = text;
  status.className = error ? 'error' : '';
}

function fmt(value, digits) { return value === null || value === undefined ? '–' : value.toFixed(digits); }
function fmtPct(value) { return value === null || value === undefined ? '–' : (100 * value).toFixed(2) + ' %'; }
function fmtBytes(n) {
  if (n === null || n === undefined) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i ? 1 : 0) + ' ' + units[i];
}
function fmtSeconds(s) {
  if (s === null || s === undefined) return '–';
  if (s < 120) return s.toFixed(1) + ' s';
  if (s < 7200) return (s / 60).toFixed(1) + ' min';
  return (s / 3600).toFixed(1) + ' h';
}

function cell(row, text, className) {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function progressCell(row, job) {
  const td = document.createElement('td');
  const bar = document.createElement('span');
  bar.className = 'bar';
  const fill = document.createElement('span');
  fill.style.width = (100 * job.progress).toFixed(1) + '%';
  bar.appendChild(fill);
  td.appendChild(bar);
  td.appendChild(document.createTextNode((100 * job.progress).toFixed(0) + ' %'));
  row.appendChild(td);
}

function jobLink(id) {
  const a = document.createElement('a');
  a.href = withToken('/job/' + encodeURIComponent(id));
  a.textContent = id;
  return a;
}

// Runs `step` now and every POLL_MS, reporting failures in the status line.
function poll(step) {
  const run = async () => {
    try {
      await step();
      setStatus('updated ' + new Date().toLocaleTimeString(), false);
    } catch (e) {
      setStatus(String(e), true);
    }
    setTimeout(run, POLL_MS);
  };
  run();
}

// ---- jobs page ----

function jobsPage() {
  const tbody = document.querySelector('#jobs tbody');
  poll(async () => {
    const data = await api('/api/jobs');
    tbody.replaceChildren();
    for (const job of data.jobs) {
      const row = document.createElement('tr');
      row.dataset.jobId = job.id;
      row.appendChild(document.createElement('td')).appendChild(jobLink(job.id));
      cell(row, job.name);
      cell(row, job.state, 'state-' + job.state).title = job.error;
      progressCell(row, job);
      cell(row, job.round + ' / ' + job.total_rounds, 'num');
      cell(row, fmt(job.train_loss, 4), 'num');
      cell(row, fmtPct(job.test_accuracy), 'num');
      cell(row, fmt(job.test_loss, 4), 'num');
      cell(row, fmtBytes(job.bytes_sent + job.bytes_received), 'num');
      cell(row, fmtSeconds(job.train_seconds), 'num');
      cell(row, fmtSeconds(job.eta_seconds), 'num');
      cell(row, job.mode);
      cell(row, job.model);
      tbody.appendChild(row);
    }
    document.body.dataset.jobs = String(data.jobs.length);
  });
}

// ---- workers page ----

function workersPage() {
  const tbody = document.querySelector('#workers tbody');
  poll(async () => {
    const data = await api('/api/workers');
    tbody.replaceChildren();
    for (const w of data.workers) {
      const row = document.createElement('tr');
      row.dataset.workerId = w.id;
      cell(row, w.id);
      cell(row, w.name);
      cell(row, w.state, 'state-' + w.state);
      const serving = row.appendChild(document.createElement('td'));
      if (w.serving_job_id) {
        serving.appendChild(jobLink(w.serving_job_id));
      } else {
        serving.textContent = '–';
      }
      const task = row.appendChild(document.createElement('td'));
      if (w.job_id) {
        task.appendChild(jobLink(w.job_id));
        task.appendChild(document.createTextNode(' round ' + w.round + ', subnet ' + w.subnet));
      } else {
        task.textContent = '–';
      }
      cell(row, w.last_step_seconds === null ? '–' : (1000 * w.last_step_seconds).toFixed(2) + ' ms', 'num');
      cell(row, String(w.tasks_done), 'num');
      cell(row, w.last_contact_unix === null ? '–' : fmtSeconds(Math.max(0, data.now - w.last_contact_unix)) + ' ago', 'num');
      tbody.appendChild(row);
    }
    document.body.dataset.workers = String(data.workers.length);
  });
}

// ---- one job ----

const COLUMNS = ['round', 'seconds', 'bytes', 'loss', 'accuracy', 'test_loss'];

// The history of one job as read so far.
class JobHistory {
  constructor(id) {
    this.id = id;
    this.next = 0;
    this.job = null;
    this.spec = null;
    this.events = [];
    this.points = Object.fromEntries(COLUMNS.map((c) => [c, []]));
  }

  async update() {
    const data = await api('/api/job/' + encodeURIComponent(this.id) + '?since=' + this.next);
    this.job = data.job;
    this.spec = data.spec;
    this.next = data.next;
    this.events.push(...data.events);
    const p = this.points;
    for (let i = 0; i < data.points.round.length; i++) {
      // A round already shown is replaced (its evaluation may come later).
      const last = p.round.length - 1;
      const replace = last >= 0 && p.round[last] === data.points.round[i];
      for (const c of COLUMNS) {
        if (replace) p[c][last] = data.points[c][i]; else p[c].push(data.points[c][i]);
      }
    }
  }
}

// uPlot's aligned data: the sorted union of the x values, and each job's
// `y` column on it (null where the job has no point).
function alignedData(histories, x, y) {
  const xs = [...new Set(histories.flatMap((h) => h.points[x]))].sort((a, b) => a - b);
  const index = new Map(xs.map((v, i) => [v, i]));
  const data = [xs];
  for (const h of histories) {
    const ys = new Array(xs.length).fill(null);
    h.points[x].forEach((v, i) => { ys[index.get(v)] = h.points[y][i]; });
    data.push(ys);
  }
  return data;
}

const X_LABELS = {round: 'round', seconds: 'train time (s)', bytes: 'bytes moved'};

class Chart {
  constructor(element, title, y, yLabel) {
    this.element = element;
    this.title = title;
    this.y = y;
    this.yLabel = yLabel;
    this.plot = null;
    this.key = '';
  }

  draw(histories, x) {
    const data = alignedData(histories, x, this.y);
    const key = x + '|' + histories.map((h) => h.id).join(',');
    if (this.plot === null || key !== this.key) {
      if (this.plot !== null) this.plot.destroy();
      this.key = key;
      this.plot = new uPlot({
        title: this.title,
        width: 560,
        height: 320,
        scales: {x: {time: false}},
        axes: [{label: X_LABELS[x]}, {label: this.yLabel}],
        series: [{label: X_LABELS[x]}].concat(histories.map((h, i) => ({
          label: h.id + (h.job ? ' (' + h.job.mode + ')' : ''),
          stroke: COLORS[i % COLORS.length],
          width: 2,
          spanGaps: true,
        }))),
      }, data, this.element);
    } else {
      this.plot.setData(data);
    }
    // The main job's plotted points, for tests and curious readers.
    const main = histories[0].points[this.y];
    this.element.dataset.points = String(main.filter((v) => v !== null).length);
  }
}

function jobPage() {
  const id = decodeURIComponent(location.pathname.slice('/job/'.length));
  document.getElementById('title').textContent = 'Job ' + id;
  document.title = 'ist: ' + id;
  const main = new JobHistory(id);
  const compared = new Map();
  for (const other of (new URLSearchParams(location.search).get('compare') || '').split(',')) {
    if (other && other !== id) compared.set(other, new JobHistory(other));
  }
  const loss = new Chart(document.getElementById('loss-chart'), 'train loss', 'loss', 'loss');
  const accuracy = new Chart(document.getElementById('accuracy-chart'), 'test accuracy',
                             'accuracy', 'accuracy');
  let x = 'round';
  const redraw = () => {
    const histories = [main, ...compared.values()];
    loss.draw(histories, x);
    accuracy.draw(histories, x);
  };
  document.querySelectorAll('input[name=x]').forEach((radio) => {
    radio.addEventListener('change', () => { x = radio.value; redraw(); });
  });
  const compareBox = document.getElementById('compare');
  const offered = new Set();
  const cancel = document.getElementById('cancel');
  cancel.addEventListener('click', async () => {
    if (!window.confirm('Cancel ' + id + '? Its model stays at the last merged round.')) return;
    cancel.disabled = true;
    try {
      const result = await cancelJob(id);
      setStatus(id + ': ' + result.state, false);
    } catch (e) {
      setStatus(e.message, true);
    } finally {
      cancel.disabled = false;
    }
  });

  poll(async () => {
    await Promise.all([main.update(), ...[...compared.values()].map((h) => h.update())]);
    const job = main.job;
    const tbody = document.querySelector('#summary tbody');
    tbody.replaceChildren();
    const row = document.createElement('tr');
    cell(row, job.id);
    cell(row, job.state, 'state-' + job.state).title = job.error;
    progressCell(row, job);
    cell(row, job.round + ' / ' + job.total_rounds, 'num');
    cell(row, fmt(job.train_loss, 4), 'num');
    cell(row, fmtPct(job.test_accuracy), 'num');
    cell(row, fmtBytes(job.bytes_sent + job.bytes_received), 'num');
    cell(row, fmtSeconds(job.train_seconds), 'num');
    cell(row, fmtSeconds(job.eta_seconds), 'num');
    cell(row, job.mode);
    cell(row, job.model);
    tbody.appendChild(row);
    const cancel = document.getElementById('cancel');
    cancel.hidden = !(job.state === 'QUEUED' || job.state === 'RUNNING');
    document.getElementById('spec').textContent = Object.entries(main.spec || {})
        .map(([k, v]) => k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v)).join('\n');
    const events = document.getElementById('events');
    events.replaceChildren();
    for (const e of main.events) {
      const li = document.createElement('li');
      li.textContent = 'round ' + e.round + ' (' + fmtSeconds(e.seconds) + '): ' + e.text;
      events.appendChild(li);
    }
    // Other jobs to compare with, offered once each.
    const all = await api('/api/jobs');
    for (const other of all.jobs) {
      if (other.id === id || offered.has(other.id)) continue;
      offered.add(other.id);
      const label = document.createElement('label');
      const box = document.createElement('input');
      box.type = 'checkbox';
      box.checked = compared.has(other.id);
      box.addEventListener('change', async () => {
        if (box.checked) {
          const h = new JobHistory(other.id);
          compared.set(other.id, h);
          await h.update();
        } else {
          compared.delete(other.id);
        }
        redraw();
      });
      label.appendChild(box);
      label.appendChild(document.createTextNode(' ' + other.id + ' (' + other.mode + ')'));
      compareBox.appendChild(label);
    }
    redraw();
  });
}

({jobs: jobsPage, workers: workersPage, job: jobPage})[document.body.dataset.page]();
