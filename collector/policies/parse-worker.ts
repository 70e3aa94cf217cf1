/**
 * The worker thread behind policy-parser.ts: reads policy files that came over the API (YAML or
 * JSON text) with the same rules as everywhere (common/policy: compilePolicyFiles), off the
 * collector's event loop, and answers plain data — each policy's kind, name, source, line and
 * manifest, or every problem. One job at a time; the parent enforces the time budget by
 * terminating this thread.
 */
import { parentPort } from 'node:worker_threads';
import { compilePolicyFiles, PolicyInvalidError } from '../../common/policy';
import type { ParseJob, ParseReply } from './policy-parser';

parentPort?.on('message', (job: ParseJob) => {
  let reply: ParseReply;
  try {
    const set = compilePolicyFiles(job.files);
    const policies = [...set.authorization, ...set.egress].map((p) => ({
      kind: p.kind,
      namespace: p.namespace,
      name: p.name,
      source: p.source,
      line: p.line,
      manifest: p.manifest as Record<string, unknown>,
    }));
    reply = { id: job.id, ok: true, policies, warnings: [...(set.warnings ?? [])] };
  } catch (err) {
    reply =
      err instanceof PolicyInvalidError
        ? { id: job.id, ok: false, problems: err.problems }
        : { id: job.id, ok: false, error: err instanceof Error ? err.message.split('\n')[0]! : String(err) };
  }
  parentPort?.postMessage(reply);
});
