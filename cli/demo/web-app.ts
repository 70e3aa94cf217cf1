/**
 * The demo's sample web app: `node web-app.js <name> <ip> <port>`.
 * GET / names the pod; GET|POST /echo echoes the request (method, path, headers, body);
 * /public… is a public page and /admin… an "admin page" (what authorization policies protect).
 * One JSON line per request on stdout, so the demo can show what reached the pod.
 */
import * as http from 'node:http';

const [name, ip, portText] = process.argv.slice(2);
const port = Number(portText);
if (!name || !ip || !Number.isInteger(port)) {
  process.stderr.write('usage: web-app.js <name> <ip> <port>\n');
  process.exit(2);
}

const MAX_BODY = 1 << 20;

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  let size = 0;
  req.on('data', (c: Buffer) => {
    size += c.length;
    if (size <= MAX_BODY) chunks.push(c);
  });
  req.on('end', () => {
    const peer = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    process.stdout.write(`${JSON.stringify({ time: new Date().toISOString(), pod: name, method: req.method, url: req.url, peer })}\n`);
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`hello from ${name}\n`);
    } else if (url.pathname === '/echo') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        `${JSON.stringify({ pod: name, method: req.method, path: req.url, headers: req.headers, peer, body: Buffer.concat(chunks).toString('utf8') })}\n`,
      );
    } else if (url.pathname === '/public' || url.pathname.startsWith('/public/')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`public page of ${name}\n`);
    } else if (url.pathname === '/admin' || url.pathname.startsWith('/admin/')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`admin page of ${name}\n`);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
    }
  });
});
server.listen(port, ip, () => process.stdout.write(`${JSON.stringify({ event: 'listening', pod: name, ip, port })}\n`));
process.on('SIGTERM', () => server.close(() => process.exit(0)));
