// Node cluster peer for the benchmarks: the textbook setup, one worker per
// CPU (or WORKERS), "Hello World\n" on every path. SIGHUP rolls the workers
// one at a time: fork, wait for 'listening', then disconnect the old one.
'use strict';
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');

const port = Number(process.env.PORT || 8082);
const n = Number(process.env.WORKERS || os.availableParallelism());

if (cluster.isPrimary) {
  for (let i = 0; i < n; i++) cluster.fork();
  cluster.on('exit', (w, code, signal) => {
    if (!w.exitedAfterDisconnect) cluster.fork();
  });
  process.on('SIGHUP', async () => {
    for (const old of Object.values(cluster.workers)) {
      const fresh = cluster.fork();
      await new Promise((resolve) => fresh.once('listening', resolve));
      old.disconnect();
    }
  });
  process.on('SIGTERM', () => {
    for (const w of Object.values(cluster.workers)) w.kill();
    process.exit(0);
  });
} else {
  // COUNTS_FILE: each worker appends "pid requests" to it when it stops
  // (deploy/bench/balance.sh).
  let served = 0;
  if (process.env.COUNTS_FILE) {
    const fs = require('node:fs');
    process.on('exit', () => fs.appendFileSync(process.env.COUNTS_FILE, `${process.pid} ${served}\n`));
    process.on('SIGTERM', () => process.exit(0));
  }
  http.createServer((req, res) => {
    served++;
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end('Hello World\n');
  }).listen(port, '127.0.0.1');
}
