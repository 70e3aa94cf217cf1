import pino, { type Logger } from 'pino';

export type { Logger };

/** Keys that must never reach a log line, wherever they appear in a logged object. */
export const REDACT_PATHS = [
  'token',
  '*.token',
  '*.*.token',
  'secret',
  '*.secret',
  'csr',
  'keyPem',
  '*.keyPem',
  'privateKeyPem',
  '*.privateKeyPem',
  'joinToken',
  '*.joinToken',
  'privateKey',
  '*.privateKey',
  'key',
  '*.key',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'headers.cookie',
  'req.headers.cookie',
];

export interface LoggerOptions {
  level?: string;
  name?: string;
  /** Where lines go; defaults to stderr so that stdout stays for command output. */
  destination?: NodeJS.WritableStream | number;
}

/** Build the one root logger of a process; components take `log.child({ component })`. */
export function createRootLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? process.env.PALISADE_LOG_LEVEL ?? 'info';
  const dest = opts.destination ?? 2;
  const stream =
    typeof dest === 'number' ? pino.destination({ fd: dest, sync: true }) : (dest as NodeJS.WritableStream);
  return pino(
    {
      level,
      name: opts.name ?? 'palisade',
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      serializers: { err: pino.stdSerializers.err },
    },
    stream,
  );
}

/** A logger that writes nothing, for unit tests and library callers that pass none. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
