import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { InfrastructureError, TaskFailedError } from '@neuroagent/platform';
import { create } from 'tar';
import { entryProblem, extractArchive } from '../src/circuit/extract.ts';

// ------------------------------------------------------------------ raw tar writing

interface RawEntry {
  name: string;
  /** ustar typeflag: '0' file, '1' hard link, '2' symlink, '3' char device, '5' dir, '6' FIFO, 'x' pax. */
  type?: string;
  data?: Buffer;
  linkname?: string;
}

/** One 512-byte ustar header with a valid checksum; tar.create cannot write unsafe entries. */
function ustarHeader(e: RawEntry, size: number): Buffer {
  const h = Buffer.alloc(512);
  const put = (offset: number, length: number, text: string) => h.write(text, offset, length, 'latin1');
  const octal = (offset: number, length: number, n: number) =>
    put(offset, length, `${n.toString(8).padStart(length - 1, '0')}\0`);
  put(0, 100, e.name);
  octal(100, 8, (e.type ?? '0') === '5' ? 0o755 : 0o644);
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, size);
  octal(136, 12, 1_700_000_000); // mtime
  h.fill(0x20, 148, 156); // the checksum field counts as spaces while summing
  put(156, 1, e.type ?? '0');
  put(157, 100, e.linkname ?? '');
  put(257, 6, 'ustar\0');
  put(263, 2, '00');
  const sum = h.reduce((acc, b) => acc + b, 0);
  put(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/** A pax extended header entry carrying `records` for the entry that follows it. */
function paxEntry(records: Record<string, string>): RawEntry {
  let body = '';
  for (const [key, value] of Object.entries(records)) {
    const rest = ` ${key}=${value}\n`;
    let len = rest.length + 1;
    while (`${len}${rest}`.length !== len) len = `${len}${rest}`.length;
    body += `${len}${rest}`;
  }
  return { name: 'PaxHeader', type: 'x', data: Buffer.from(body, 'latin1') };
}

function rawTarGz(entries: RawEntry[]): Buffer {
  const blocks: Buffer[] = [];
  for (const e of entries) {
    const data = e.data ?? Buffer.alloc(0);
    blocks.push(ustarHeader(e, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}

const file = (name: string, text = 'x'): RawEntry => ({ name, data: Buffer.from(text) });

// ------------------------------------------------------------------ fixtures

let base = ''; // everything this test writes lives under here
let archives = '';
let cache = ''; // destDir's parent, holding a marker file
let n = 0;

before(async () => {
  base = await mkdtemp(join(tmpdir(), 'circuit-extract-'));
  archives = join(base, 'archives');
  cache = join(base, 'cache');
  await mkdir(archives);
  await mkdir(cache);
  await writeFile(join(cache, 'marker'), 'keep');
});

after(async () => {
  await rm(base, { recursive: true, force: true });
});

async function writeArchive(bytes: Buffer): Promise<string> {
  const p = join(archives, `a${n++}.gz`);
  await writeFile(p, bytes);
  return p;
}

/** Builds a real source tree and packs it with tar.create (gzip). */
async function packTree(files: Record<string, string | Buffer>, roots: string[]): Promise<string> {
  const src = join(base, `src${n++}`);
  for (const [rel, content] of Object.entries(files)) {
    await mkdir(join(src, rel, '..'), { recursive: true });
    await writeFile(join(src, rel), content);
  }
  const out = join(archives, `t${n++}.gz`);
  await create({ gzip: true, file: out, cwd: src, portable: true }, roots);
  return out;
}

const limits = { maxBytes: 10_000_000, maxEntries: 100 };

async function walk(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const d of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, d.name);
    out.push(p);
    if (d.isDirectory()) out.push(...(await walk(p)));
  }
  return out;
}

/** The archive is refused with `code`, and nothing was written: no destDir, no temp dir, no evil.txt. */
async function assertRefused(archive: string, code: string, pattern: RegExp, opts = limits): Promise<void> {
  // A parent of its own per case, so one failure cannot spill into the next case's listing.
  const parent = join(cache, `case${n++}`);
  await mkdir(parent);
  await writeFile(join(parent, 'marker'), 'keep');
  const destDir = join(parent, 'circuit');
  const tmpBefore = existsSync(join(tmpdir(), 'evil.txt'));
  await assert.rejects(extractArchive(archive, destDir, opts), (err: unknown) => {
    assert.ok(err instanceof TaskFailedError, `expected TaskFailedError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
  assert.equal(existsSync(destDir), false, 'destDir must not be created');
  assert.deepEqual(await readdir(parent), ['marker']);
  const written = await walk(base);
  assert.deepEqual(
    written.filter((p) => /evil/.test(p)),
    [],
  );
  assert.equal(existsSync(join(tmpdir(), 'evil.txt')), tmpBefore);
  assert.equal(existsSync('/abs-evil.txt'), false);
}

// ------------------------------------------------------------------ tests

describe('extractArchive', () => {
  it('extracts a good archive, detects its root folder and drops modes beyond 0644/0755', async () => {
    const h5 = randomBytes(300_000);
    const archive = await packTree(
      {
        'circuit/circuit_config.json': '{"version": 2}',
        'circuit/nodes/nodes.h5': h5,
        'circuit/run.sh': '#!/bin/sh',
      },
      ['circuit'],
    );
    const destDir = join(cache, 'good');
    const r = await extractArchive(archive, destDir, limits);
    assert.equal(r.root, 'circuit');
    assert.equal(r.entries, 5); // circuit/, circuit/nodes/, and three files
    assert.equal(r.bytes, h5.length + '{"version": 2}'.length + '#!/bin/sh'.length);
    assert.ok((await readFile(join(destDir, 'circuit/nodes/nodes.h5'))).equals(h5));
    assert.equal(await readFile(join(destDir, 'circuit/circuit_config.json'), 'utf8'), '{"version": 2}');
    for (const p of await walk(destDir)) {
      const st = await stat(p);
      const allowed = st.isDirectory() ? 0o755 : 0o644;
      assert.equal(st.mode & 0o7777 & ~allowed, 0, `${p} has mode ${(st.mode & 0o7777).toString(8)}`);
    }
    assert.equal((await stat(destDir)).mode & 0o777, 0o755);
    assert.deepEqual((await readdir(cache)).sort(), ['good', 'marker']);
    await rm(destDir, { recursive: true });
  });

  it('drops the executable bit of archived files', async () => {
    const src = join(base, 'exec-src');
    await mkdir(join(src, 'c'), { recursive: true });
    await writeFile(join(src, 'c/tool'), 'x');
    await chmod(join(src, 'c/tool'), 0o4777);
    const archive = join(archives, 'exec.gz');
    await create({ gzip: true, file: archive, cwd: src }, ['c']);
    const destDir = join(cache, 'exec');
    await extractArchive(archive, destDir, limits);
    assert.equal((await stat(join(destDir, 'c/tool'))).mode & 0o7111, 0);
    await rm(destDir, { recursive: true });
  });

  it("finds the root behind a './' prefix, and no root when there are several top-level names", async () => {
    const dotted = await packTree({ 'circuit/a.json': '{}' }, ['.']);
    const d1 = join(cache, 'dotted');
    assert.equal((await extractArchive(dotted, d1, limits)).root, 'circuit');
    const flat = await packTree({ 'a.json': '{}', 'b/c.json': '{}' }, ['a.json', 'b']);
    const d2 = join(cache, 'flat');
    assert.equal((await extractArchive(flat, d2, limits)).root, '');
    const single = await packTree({ 'only.json': '{}' }, ['only.json']);
    const d3 = join(cache, 'single');
    assert.equal((await extractArchive(single, d3, limits)).root, '', 'a lone file is not a root folder');
    await Promise.all([d1, d2, d3].map((d) => rm(d, { recursive: true })));
  });

  const malicious: [string, RawEntry[], RegExp][] = [
    ['a ../ path', [file('../evil.txt')], /"\.\.\/evil\.txt" has a '\.\.' path segment/],
    ['a ../../ path', [file('../../evil.txt')], /'\.\.' path segment/],
    ['a .. segment in the middle', [file('ok/../../evil.txt')], /'\.\.' path segment/],
    ['an absolute path', [file('/abs-evil.txt')], /has an absolute path/],
    ['a drive letter', [file('C:/evil.txt')], /has a drive letter/],
    ['a relative drive letter', [file('C:evil.txt')], /has a drive letter/],
    ['a backslash path', [file('..\\evil.txt')], /has a backslash/],
    [
      'a symlink to /etc/passwd',
      [{ name: 'passwd', type: '2', linkname: '/etc/passwd' }],
      /symlink to "\/etc\/passwd"/,
    ],
    [
      'a symlink climbing out',
      [{ name: 'up', type: '2', linkname: '..' }, file('up/evil.txt')],
      /symlink to "\.\."/,
    ],
    ['a hard link to ../x', [{ name: 'hl', type: '1', linkname: '../x' }], /hard link to "\.\.\/x"/],
    [
      'a hard link inside the dir (all links are refused)',
      [{ name: 'ok/hl', type: '1', linkname: 'ok/a.txt' }],
      /hard link to "ok\/a\.txt" \(links are refused\)/,
    ],
    ['a character device', [{ name: 'ok/tty', type: '3' }], /unsupported type CharacterDevice/],
    ['a FIFO', [{ name: 'ok/fifo', type: '6' }], /unsupported type FIFO/],
    [
      'an unknown entry type',
      [{ name: 'ok/weird', type: 'Z', data: Buffer.from('evil') }],
      /unsupported type/,
    ],
  ];

  for (const [what, entries, pattern] of malicious) {
    it(`refuses an archive with ${what} as bad_archive and writes nothing`, async () => {
      // Good entries first: a refusal must not leave them behind either.
      const archive = await writeArchive(
        rawTarGz([{ name: 'ok/', type: '5' }, file('ok/a.txt', 'fine'), ...entries, file('ok/z.txt')]),
      );
      await assertRefused(archive, 'bad_archive', pattern);
    });
  }

  it('accepts the raw tar writer output when every entry is safe (control for the cases above)', async () => {
    const archive = await writeArchive(rawTarGz([{ name: 'ok/', type: '5' }, file('ok/a.txt', 'fine')]));
    const destDir = join(cache, 'raw-ok');
    const r = await extractArchive(archive, destDir, limits);
    assert.deepEqual(r, { entries: 2, bytes: 4, root: 'ok' });
    assert.equal(await readFile(join(destDir, 'ok/a.txt'), 'utf8'), 'fine');
    await rm(destDir, { recursive: true });
  });

  it('cannot be tricked by a NUL in a pax path: tar cuts the value at the NUL, which stays inside', async () => {
    const archive = await writeArchive(
      rawTarGz([paxEntry({ path: 'ok/inside.txt\0/../../evil.txt' }), file('ok/harmless.json', 'data')]),
    );
    const destDir = join(cache, 'nul');
    const r = await extractArchive(archive, destDir, limits);
    assert.deepEqual(r, { entries: 1, bytes: 4, root: 'ok' });
    assert.deepEqual(await readdir(join(destDir, 'ok')), ['inside.txt']);
    assert.deepEqual(
      (await walk(base)).filter((p) => /evil/.test(p)),
      [],
    );
    await rm(destDir, { recursive: true });
  });

  it('removes its temp dir when the final rename fails (destDir already filled)', async () => {
    const archive = await packTree({ 'c/a.txt': 'new' }, ['c']);
    const parent = join(cache, 'taken');
    await mkdir(join(parent, 'circuit'), { recursive: true });
    await writeFile(join(parent, 'circuit', 'old.txt'), 'old');
    await assert.rejects(extractArchive(archive, join(parent, 'circuit'), limits), (err: unknown) => {
      assert.ok(err instanceof InfrastructureError, String(err));
      assert.equal(err.code, 'disk_write_failed');
      return true;
    });
    assert.deepEqual(await readdir(parent), ['circuit']);
    assert.deepEqual(await readdir(join(parent, 'circuit')), ['old.txt']);
  });

  it('refuses names the disk cannot hold as bad_archive before writing: a long segment, a long path', async () => {
    const longSegment = `c/${'a'.repeat(256)}.txt`;
    await assertRefused(
      await writeArchive(rawTarGz([paxEntry({ path: longSegment }), file('placeholder')])),
      'bad_archive',
      /path segment over 255 bytes/,
    );
    const longPath = `c/${Array.from({ length: 20 }, () => 'b'.repeat(250)).join('/')}/x.txt`;
    await assertRefused(
      await writeArchive(rawTarGz([paxEntry({ path: longPath }), file('placeholder')])),
      'bad_archive',
      /path over 4096 bytes/,
    );
  });

  it('refuses a file that a later entry uses as a folder, either way round, as bad_archive', async () => {
    await assertRefused(
      await writeArchive(rawTarGz([file('c/a', 'file'), file('c/a/b', 'below')])),
      'bad_archive',
      /uses the file "c\/a" as a folder/,
    );
    await assertRefused(
      await writeArchive(rawTarGz([file('c/a/b', 'below'), file('c/a', 'file')])),
      'bad_archive',
      /is both a file and a folder/,
    );
    await assertRefused(
      await writeArchive(rawTarGz([file('c/a', 'file'), { name: 'c/a/', type: '5' }])),
      'bad_archive',
      /is both a file and a folder/,
    );
  });

  it('refuses more entries than maxEntries as bad_archive', async () => {
    const archive = await packTree(
      Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`c/f${i}.txt`, 'x'])),
      ['c'],
    );
    await assertRefused(archive, 'bad_archive', /more than 5 entries/, { ...limits, maxEntries: 5 });
  });

  it('refuses file sizes summing past maxBytes as too_large', async () => {
    const archive = await packTree({ 'c/a.bin': Buffer.alloc(3000), 'c/b.bin': Buffer.alloc(3000) }, ['c']);
    await assertRefused(archive, 'too_large', /holds more than 5000 bytes/, { ...limits, maxBytes: 5000 });
  });

  it('cuts off a gzip bomb tail after the tar trailer as too_large', async () => {
    const tar = Buffer.concat([ustarHeader({ name: 'c/a.txt' }, 1), Buffer.alloc(512), Buffer.alloc(1024)]);
    const archive = await writeArchive(gzipSync(Buffer.concat([tar, Buffer.alloc(5_000_000)])));
    await assertRefused(archive, 'too_large', /expands to more than \d+ bytes/, {
      maxBytes: 1000,
      maxEntries: 10,
    });
  });

  it('refuses corrupt, truncated, non-gzip, non-tar and double-gzip input as bad_archive', async () => {
    const good = await readFile(await packTree({ 'c/a.bin': randomBytes(50_000) }, ['c']));
    const plainTar = Buffer.concat([
      ustarHeader({ name: 'c/a.txt' }, 1),
      Buffer.alloc(512),
      Buffer.alloc(1024),
    ]);
    const inputs: [Buffer, RegExp][] = [
      [randomBytes(4096), /not valid gzip/],
      [good.subarray(0, Math.floor(good.length / 2)), /not valid gzip: unexpected end of file/],
      [
        Buffer.concat([good.subarray(0, 100), Buffer.alloc(200, 0xff), good.subarray(300)]),
        /not valid gzip|not a valid tar/, // whichever notices first: inflate or tar's header checksum
      ],
      [plainTar, /not valid gzip: incorrect header check/],
      [gzipSync(randomBytes(10_000)), /not a valid tar/],
      [gzipSync(Buffer.alloc(0)), /not a valid tar: TAR_BAD_ARCHIVE: Unrecognized archive format/],
      [gzipSync(good), /gzipped twice/],
    ];
    for (const [bytes, pattern] of inputs)
      await assertRefused(await writeArchive(bytes), 'bad_archive', pattern);
  });
});

describe('entryProblem', () => {
  it('refuses the unsafe paths and types and accepts plain files and directories', () => {
    const refused: [string, string, string | undefined][] = [
      ['a\0b', 'File', undefined],
      ['../x', 'File', undefined],
      ['/x', 'File', undefined],
      ['D:x', 'File', undefined],
      ['a\\b', 'File', undefined],
      ['l', 'SymbolicLink', 'inside'],
      ['l', 'Link', 'inside'],
      ['d', 'BlockDevice', undefined],
      ['s', 'SparseFile', undefined],
      ['f', 'File', 'target'],
      ['./', 'File', undefined],
    ];
    for (const [path, type, linkpath] of refused) {
      assert.notEqual(
        entryProblem({ path, type, linkpath } as never),
        null,
        `${JSON.stringify(path)} ${type}`,
      );
    }
    for (const [path, type] of [
      ['c/a.txt', 'File'],
      ['./c/', 'Directory'],
      ['./', 'Directory'],
      ['c/..x/...', 'File'],
    ]) {
      assert.equal(entryProblem({ path, type } as never), null, `${path} ${type}`);
    }
  });
});
