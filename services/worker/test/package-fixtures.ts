// Builds a real Pyodide package source for tests: pure-Python wheels (a stored zip written by
// hand, so no tool is needed) and a pyodide-lock.json that lists them with their sha256, in the
// schema of the lock that ships with Pyodide. Used to test package loading offline.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { BUNDLED_LOCK_FILE } from '../src/python/sandbox-paths.ts';

export interface FixturePackage {
  /** Distribution name, e.g. `hello-pkg`. */
  name: string;
  /** Import name, e.g. `hello_pkg`. */
  module: string;
  source: string;
  depends?: string[];
}

/** A zip archive with stored (uncompressed) entries: all a wheel needs. */
export function zip(entries: { name: string; data: Buffer }[]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const { name, data } of entries) {
    const nameBuf = Buffer.from(name, 'utf8');
    const crc = crc32(data);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x21, 12); // 1980-01-01
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBuf.length, 26);
    locals.push(local, nameBuf, data);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(20, 4);
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x21, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBuf.length, 28);
    central.writeUInt32LE(offset, 42);
    centrals.push(central, nameBuf);
    offset += 30 + nameBuf.length + data.length;
  }
  const cd = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, cd, end]);
}

export function wheel(pkg: FixturePackage): { fileName: string; bytes: Buffer } {
  const dist = pkg.name.replace(/-/g, '_');
  const info = `${dist}-1.0.dist-info`;
  const files = [
    { name: `${pkg.module}/__init__.py`, data: Buffer.from(pkg.source) },
    {
      name: `${info}/METADATA`,
      data: Buffer.from(`Metadata-Version: 2.1\nName: ${pkg.name}\nVersion: 1.0\n`),
    },
    {
      name: `${info}/WHEEL`,
      data: Buffer.from(
        'Wheel-Version: 1.0\nGenerator: neuroagent-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n',
      ),
    },
  ];
  const record = `${[...files.map((f) => `${f.name},,`), `${info}/RECORD,,`].join('\n')}\n`;
  files.push({ name: `${info}/RECORD`, data: Buffer.from(record) });
  return { fileName: `${dist}-1.0-py3-none-any.whl`, bytes: zip(files) };
}

/** Writes the wheels and a lock file listing them into `dir` (a directory package source). */
export function writePackageSource(dir: string, packages: FixturePackage[]): void {
  const bundled = JSON.parse(readFileSync(BUNDLED_LOCK_FILE, 'utf8')) as { info: unknown };
  const lock = { info: bundled.info, packages: {} as Record<string, unknown> };
  for (const pkg of packages) {
    const { fileName, bytes } = wheel(pkg);
    writeFileSync(join(dir, fileName), bytes);
    lock.packages[pkg.name] = {
      name: pkg.name,
      version: '1.0',
      file_name: fileName,
      install_dir: 'site',
      sha256: createHash('sha256').update(bytes).digest('hex'),
      package_type: 'package',
      imports: [pkg.module],
      depends: pkg.depends ?? [],
      unvendored_tests: false,
      tool: {},
    };
  }
  writeFileSync(join(dir, 'pyodide-lock.json'), JSON.stringify(lock));
}

/**
 * Serves a directory over HTTP on loopback and records the paths requested. Requests for which
 * `stall` returns true are never answered (a package source that hangs mid-install).
 */
export async function serveDirectory(
  dir: string,
  stall: (path: string) => boolean = () => false,
): Promise<{ url: string; requests: string[]; server: Server }> {
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    requests.push(path);
    if (stall(path)) return;
    try {
      const body = readFileSync(join(dir, path.replace(/^\/+/, '')));
      res.writeHead(200, { 'content-length': body.length }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/`, requests, server };
}
