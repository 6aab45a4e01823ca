import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { answers, startChild, type Child } from './processes.js';

/*
 * The baseline a plain Kubernetes Service or an ingress gives: nginx from Debian's package as a
 * round-robin reverse proxy, with keep-alive upstream connections and response buffering off so
 * streams pass through as they are produced.
 */

const NGINX = '/usr/sbin/nginx';

/**
 * The nginx binary, installing Debian's `nginx-light` when it is missing and we may (root, apt).
 * Undefined when neither works: the suite then runs without the nginx baseline and says so.
 */
export function ensureNginx(log: (line: string) => void): string | undefined {
  if (existsSync(NGINX)) return NGINX;
  if (process.getuid?.() !== 0) return undefined;
  try {
    log('installing nginx-light from Debian (apt-get) for the round-robin baseline…');
    execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
    execFileSync('apt-get', ['install', '-y', '-qq', 'nginx-light'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch {
    return undefined;
  }
  return existsSync(NGINX) ? NGINX : undefined;
}

/** One worker (the gateway is one Node process, so both get one core) and round-robin upstreams. */
export function nginxConfig(dir: string, port: number, upstreams: readonly string[]): string {
  return `worker_processes 1;
error_log ${join(dir, 'error.log')} warn;
pid ${join(dir, 'nginx.pid')};
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'body')};
  proxy_temp_path ${join(dir, 'proxy')};
  fastcgi_temp_path ${join(dir, 'fastcgi')};
  uwsgi_temp_path ${join(dir, 'uwsgi')};
  scgi_temp_path ${join(dir, 'scgi')};
  upstream pool {
${upstreams.map((u) => `    server ${u};`).join('\n')}
    keepalive 256;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 64m;
    client_body_buffer_size 1m;
    location / {
      proxy_pass http://pool;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_read_timeout 3600s;
    }
  }
}
`;
}

export async function startNginx(binary: string, dir: string, port: number, upstreams: readonly string[]): Promise<Child> {
  await mkdir(dir, { recursive: true });
  const conf = join(dir, 'nginx.conf');
  await writeFile(conf, nginxConfig(dir, port, upstreams));
  return startChild('nginx', binary, ['-p', dir, '-c', conf, '-g', 'daemon off;'], () => answers(`http://127.0.0.1:${port}/health`));
}
