/**
 * The demo's host outside the mesh: `node ext-server.js <cert-dir>`. Serves HTTP on :80 and
 * HTTPS on :443 (certificate for allowed.example.test and blocked.example.test, from the
 * demo's own CA) on every address of its namespace. One JSON line per request on stdout, so the
 * demo and its tests can see what reached the outside world.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import type { TLSSocket } from 'node:tls';

const [certDir] = process.argv.slice(2);
if (!certDir) {
  process.stderr.write('usage: ext-server.js <cert-dir>\n');
  process.exit(2);
}

function handler(scheme: 'http' | 'https'): http.RequestListener {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      const sni = scheme === 'https' ? ((req.socket as TLSSocket).servername || null) : null;
      const host = req.headers.host ?? '';
      const line = { time: new Date().toISOString(), scheme, sni, host, method: req.method, url: req.url, local: req.socket.localAddress, peer: req.socket.remoteAddress };
      process.stdout.write(`${JSON.stringify(line)}\n`);
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from ext: ${scheme}://${host}${req.url ?? ''}\n`);
    });
  };
}

const plain = http.createServer(handler('http'));
const secure = https.createServer(
  { key: fs.readFileSync(path.join(certDir, 'ext.key')), cert: fs.readFileSync(path.join(certDir, 'ext.crt')), minVersion: 'TLSv1.2' },
  handler('https'),
);
let ready = 0;
const listening = (): void => {
  ready += 1;
  if (ready === 2) process.stdout.write(`${JSON.stringify({ event: 'listening', ports: [80, 443] })}\n`);
};
plain.listen(80, '0.0.0.0', listening);
secure.listen(443, '0.0.0.0', listening);
process.on('SIGTERM', () => {
  plain.close();
  secure.close();
  setTimeout(() => process.exit(0), 200).unref();
});
