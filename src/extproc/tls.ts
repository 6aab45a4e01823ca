import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generate } from 'selfsigned';

/** A server certificate and its private key, PEM. */
export interface ServerCertificate {
  readonly cert: Buffer;
  readonly key: Buffer;
  /** True when generated at start (nobody can verify it: Envoy's ext_proc cluster does not, upstream's guides included). */
  readonly selfSigned: boolean;
}

/** How long a generated certificate is valid: upstream's EPP generates one valid for a year at each start. */
const SELF_SIGNED_DAYS = 365;

/**
 * The certificate for the gRPC port: `tls.crt` and `tls.key` in `certPath` (the layout of a
 * Kubernetes TLS Secret mounted as a volume, as upstream's `--cert-path`), or a self-signed
 * ECDSA P-256 certificate made now when no path is given. Rejects with the file error when a file
 * cannot be read.
 */
export async function serverCertificate(certPath: string | undefined): Promise<ServerCertificate> {
  if (certPath !== undefined) {
    const [cert, key] = await Promise.all([readFile(join(certPath, 'tls.crt')), readFile(join(certPath, 'tls.key'))]);
    return { cert, key, selfSigned: false };
  }
  const now = new Date();
  const pems = await generate([{ name: 'commonName', value: 'infergate-epp' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate: now,
    notAfterDate: new Date(now.getTime() + SELF_SIGNED_DAYS * 86_400_000),
  });
  return { cert: Buffer.from(pems.cert), key: Buffer.from(pems.private), selfSigned: true };
}
