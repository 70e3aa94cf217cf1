/**
 * The mesh CA from a Kubernetes Secret (`palisade collector --kubernetes --ca-secret NS/NAME`):
 * every collector replica signs with the same CA, read through the API, so an agent's node and
 * workload certificates are good at whichever replica it reaches. The Secret holds `ca.crt` and
 * `ca.key` (what deploy/README.md's `kubectl create secret generic palisade-ca` makes). When it
 * does not exist, the replica creates it with a new CA — an optimistic create: of two replicas
 * starting at once, one create wins and the other is answered 409 AlreadyExists and reads the
 * winner's, so both sign with one CA. The CA is read once, at start: a changed Secret takes a restart.
 */
import { X509Certificate } from 'node:crypto';
import { isObjectRef } from '../../common/identity';
import { invalidArgument, PalisadeError } from '../../common/errors';
import { statusOf, type KubeClient } from '../../common/kube/client';
import type { Logger } from '../../common/log';
import { CertificateAuthority, newCaPem } from '../mesh-ca';

export interface CaSecretRef {
  namespace: string;
  name: string;
}

const CERT_KEY = 'ca.crt';
const KEY_KEY = 'ca.key';

/** `palisade-system/palisade-ca` → its parts; anything else is one line. */
export function parseCaSecretRef(text: string): CaSecretRef {
  if (!isObjectRef(text, { bare: false })) {
    throw invalidArgument(`invalid --ca-secret ${JSON.stringify(text.slice(0, 256))}: expected NAMESPACE/NAME of a Secret (palisade-system/palisade-ca)`);
  }
  const [namespace, name] = text.split('/') as [string, string];
  return { namespace, name };
}

/** Read the CA from the Secret, or create the Secret with a new CA when there is none (see the top). */
export async function caFromSecret(opts: { client: KubeClient; ref: CaSecretRef; trustDomain: string; log: Logger }): Promise<CertificateAuthority> {
  const { client, ref, trustDomain } = opts;
  const log = opts.log.child({ component: 'mesh-ca' });
  const what = `secret ${ref.namespace}/${ref.name}`;
  for (let attempt = 0; ; attempt++) {
    const found = await client.call(`get ${what}`, () => client.core.readNamespacedSecret(ref), { notFound: 'undefined' });
    if (found !== undefined) {
      const ca = caOfSecret(found.data, what, trustDomain);
      log.info({ caSecret: `${ref.namespace}/${ref.name}`, fingerprint256: fingerprint(ca) }, 'mesh CA loaded from the Kubernetes Secret');
      return ca;
    }
    if (attempt > 0) {
      // Created by another replica, then deleted before we could read it: not something to race on.
      throw new PalisadeError('PALISADE_ERR_KUBERNETES', `${what}: created by another collector and gone again before it could be read`);
    }
    const { keyPem, certPem } = newCaPem(trustDomain);
    const body = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: ref.name, namespace: ref.namespace, labels: { 'app.kubernetes.io/part-of': 'palisade', 'app.kubernetes.io/component': 'mesh-ca' } },
      type: 'Opaque',
      // The CA does not rotate by editing its Secret: every issued certificate chains to it.
      immutable: true,
      data: { [CERT_KEY]: Buffer.from(certPem).toString('base64'), [KEY_KEY]: Buffer.from(keyPem).toString('base64') },
    };
    try {
      await client.call(`create ${what}`, () => client.core.createNamespacedSecret({ namespace: ref.namespace, body }));
    } catch (err) {
      if (statusOf((err as { cause?: unknown }).cause)?.code !== 409) throw err;
      log.info({ caSecret: `${ref.namespace}/${ref.name}` }, 'another collector created the mesh CA first: using that one');
      continue;
    }
    const ca = CertificateAuthority.fromPem(trustDomain, keyPem, certPem, names(what), 'PALISADE_ERR_KUBERNETES');
    log.info({ caSecret: `${ref.namespace}/${ref.name}`, fingerprint256: fingerprint(ca) }, 'mesh CA created in the Kubernetes Secret');
    return ca;
  }
}

/** The CA in a Secret's data (base64 values); a missing key or a bad pair is one line naming the Secret. */
export function caOfSecret(data: Record<string, string> | undefined, what: string, trustDomain: string): CertificateAuthority {
  const pem = (key: string): string => {
    const b64 = data?.[key];
    if (typeof b64 !== 'string' || b64.length === 0) {
      throw new PalisadeError('PALISADE_ERR_CONFIG_INVALID', `${what} has no ${key}: it must hold ${CERT_KEY} and ${KEY_KEY} (deploy/README.md, Install)`);
    }
    return Buffer.from(b64, 'base64').toString('utf8');
  };
  return CertificateAuthority.fromPem(trustDomain, pem(KEY_KEY), pem(CERT_KEY), names(what), 'PALISADE_ERR_CONFIG_INVALID');
}

function names(what: string): { key: string; cert: string; where: string } {
  return { key: `${what}'s ${KEY_KEY}`, cert: `${what}'s ${CERT_KEY}`, where: `the CA in ${what}` };
}

function fingerprint(ca: CertificateAuthority): string {
  return new X509Certificate(ca.certPem).fingerprint256;
}
