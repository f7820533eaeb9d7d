// Peer 3: Node `ws`, one ws.send(msg) per subscriber per tick, no batching.
//
//   node bench/peers/node_ws/server.js --port 8003 --nsymbols 100 --rate 2000
//
// Same tick schedule as bench/peers/ticksource.py: tick i belongs to symbol i % n and is
// stamped with its scheduled time start + i / rate (so generator lag shows up as latency).
'use strict';

const http = require('http');
const { WebSocketServer } = require('ws');

function parseArgs(argv) {
  const opts = { host: '127.0.0.1', port: 8765, symbols: '', nsymbols: 100, rate: 2000, seed: 1 };
  for (let i = 2; i < argv.length; i += 1) {
    const key = argv[i].replace(/^--/, '');
    const val = argv[i + 1];
    if (!(key in opts) || val === undefined) throw new Error(`bad argument ${argv[i]}`);
    opts[key] = typeof opts[key] === 'number' ? Number(val) : val;
    i += 1;
  }
  return opts;
}

const opts = parseArgs(process.argv);
const symbols = opts.symbols
  ? opts.symbols.split(',').filter(Boolean)
  : Array.from({ length: opts.nsymbols }, (_, i) => `S${String(i).padStart(3, '0')}`);
const known = new Set(symbols);
const subscribers = new Map(symbols.map((s) => [s, new Set()]));

// Deterministic PRNG (mulberry32) for the random walk.
let seed = opts.seed >>> 0;
function random() {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}

const prices = symbols.map((_, i) => 100 + 3 * i);
let start = Date.now() / 1000;
let count = 0;
// Exact counter boundary: ticks whose millisecond timestamp is < curMs.
let curMs = 0;
let countBeforeCurMs = 0;
const round2 = (x) => Math.round(x * 100) / 100;

function generate(cap) {
  // tick i is due once start + i / rate <= now
  const due = Math.min(cap, Math.floor((Date.now() / 1000 - start) * opts.rate) + 1 - count);
  for (let k = 0; k < due; k += 1) {
    const i = count;
    const n = i % symbols.length;
    const ts = start + i / opts.rate;
    // the nearest millisecond, as tickcast stamps (Python's round(ts * 1000))
    const ms = Math.round(ts * 1000);
    if (ms > curMs) { curMs = ms; countBeforeCurMs = i; }
    const price = prices[n] * (1 + (random() - 0.5) * 0.001);
    prices[n] = price;
    const msg = JSON.stringify({
      symbol: symbols[n],
      price: round2(price),
      bid: round2(price - 0.05),
      ask: round2(price + 0.05),
      volume: 100 * (1 + (i % 50)),
      timestamp: new Date(ms).toISOString(),
      source: 'peer-node-ws',
    });
    for (const ws of subscribers.get(symbols[n])) ws.send(msg);
    count = i + 1;
  }
  return due;
}

const server = http.createServer((req, res) => {
  if (req.url === '/ready') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ready');
  } else if (req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({
      ticks: countBeforeCurMs, boundary_ms: curMs, generated: count, rate: opts.rate, now: Date.now() / 1000,
    }));
  } else {
    res.writeHead(404);
    res.end();
  }
});

const wss = new WebSocketServer({ server, path: '/ws/market/feed', perMessageDeflate: false });
wss.on('connection', (ws) => {
  const mine = new Set();
  ws.on('message', (data) => {
    let req;
    try {
      req = JSON.parse(data.toString());
    } catch (e) {
      ws.send(JSON.stringify({ type: 'error', message: 'Invalid subscription request' }));
      return;
    }
    const syms = Array.isArray(req.symbols) ? req.symbols.filter((s) => known.has(s)) : [];
    if (req.action === 'subscribe') {
      for (const s of syms) { subscribers.get(s).add(ws); mine.add(s); }
      ws.send(JSON.stringify({ type: 'subscribed', symbols: syms }));
    } else if (req.action === 'unsubscribe') {
      for (const s of syms) { subscribers.get(s).delete(ws); mine.delete(s); }
      ws.send(JSON.stringify({ type: 'unsubscribed', symbols: syms }));
    } else if (req.action === 'ping') {
      ws.send(JSON.stringify({ type: 'pong', timestamp: new Date().toISOString() }));
    } else {
      ws.send(JSON.stringify({ type: 'error', message: 'Invalid subscription request' }));
    }
  });
  ws.on('close', () => { for (const s of mine) subscribers.get(s).delete(ws); });
  ws.on('error', () => {});
});

server.listen(opts.port, opts.host, 4096, () => {
  start = Date.now() / 1000;
  const cap = Math.max(1, Math.floor(opts.rate / 100));
  // Behind schedule (a full pass of cap ticks), only yield to I/O (setImmediate); caught
  // up, wait 1 ms for the next ticks.
  const loop = () => {
    if (generate(cap) >= cap) setImmediate(loop);
    else setTimeout(loop, 1);
  };
  loop();
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
