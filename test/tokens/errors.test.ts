import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadTokenizer, TokenizeError, TokenizerLoadError, type ModelTokenizer } from '../../src/tokens/index.js';
import { tokenizerThread } from '../../src/tokens/thread.js';
import { LLAMA3_TOKENIZER_DIR } from '../support/llama3-tokenizer.js';

const JSON_PATH = join(LLAMA3_TOKENIZER_DIR, 'tokenizer.json');
const CONFIG_PATH = join(LLAMA3_TOKENIZER_DIR, 'tokenizer_config.json');

async function rejectsLoad(dir: string, options: Parameters<typeof loadTokenizer>[1], path: string, reason: RegExp): Promise<void> {
  await assert.rejects(loadTokenizer(dir, options), (err: unknown) => {
    assert.ok(err instanceof TokenizerLoadError, String(err));
    assert.equal(err.path, path);
    assert.match(err.reason, reason);
    return true;
  });
}

async function rejectsWith(p: Promise<unknown>, reason: TokenizeError['reason']): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof TokenizeError, String(err));
    assert.equal(err.reason, reason, err.message);
    return true;
  });
}

describe('loading refuses what it cannot use, naming the file', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'infergate-tok-'));
  });
  after(async () => rm(dir, { recursive: true, force: true }));

  async function modelDir(name: string, config: string | undefined, json: 'link' | string = 'link'): Promise<string> {
    const d = join(dir, name);
    await mkdir(d);
    if (json === 'link') await symlink(JSON_PATH, join(d, 'tokenizer.json'));
    else await writeFile(join(d, 'tokenizer.json'), json);
    if (config !== undefined) await writeFile(join(d, 'tokenizer_config.json'), config);
    return d;
  }

  it('a missing directory or file', async () => {
    await rejectsLoad(join(dir, 'nope'), {}, join(dir, 'nope'), /no such directory/);
    const d = await modelDir('no-config', undefined);
    await rejectsLoad(d, {}, join(d, 'tokenizer_config.json'), /no such file/);
  });

  it('bad JSON, a file over its bound, a tokenizer.json the library refuses', async () => {
    const d = await modelDir('bad-json', '{"chat_template": ');
    await rejectsLoad(d, {}, join(d, 'tokenizer_config.json'), /not valid JSON/);
    await rejectsLoad(LLAMA3_TOKENIZER_DIR, { fileLimits: { tokenizerJsonBytes: 1_000_000 } }, JSON_PATH, /over the limit of 1000000 bytes/);
    const d2 = await modelDir('not-tokenizer', '{}', '{"model": {"type": "Nope"}}');
    await rejectsLoad(d2, {}, join(d2, 'tokenizer.json'), /not a tokenizer/);
  });

  it('a chat template that does not compile, or a list without "default"', async () => {
    const d = await modelDir('broken-template', JSON.stringify({ chat_template: '{% for m in messages %}{{ m.content }' }));
    await rejectsLoad(d, {}, join(d, 'tokenizer_config.json'), /chat_template does not compile/);
    const d2 = await modelDir('no-default', JSON.stringify({ chat_template: [{ name: 'tool_use', template: 'x' }] }));
    await rejectsLoad(d2, {}, join(d2, 'tokenizer_config.json'), /without one named "default"/);
  });

  it('a list of named templates uses "default"; special tokens given as {content} objects', async () => {
    const d = await modelDir(
      'named',
      JSON.stringify({
        bos_token: { __type: 'AddedToken', content: '<|begin_of_text|>' },
        chat_template: [
          { name: 'rag', template: 'RAG' },
          { name: 'default', template: "{{ bos_token }}{% for m in messages %}{{ m['content'] }}{% endfor %}{% if tools %}{{ tools | length }}{% endif %}" },
        ],
      }),
    );
    const tok = await loadTokenizer(d);
    try {
      assert.equal(tok.renderChat([{ role: 'user', content: 'Hi' }]), '<|begin_of_text|>Hi');
      assert.equal(tok.renderChat([{ role: 'user', content: 'Hi' }], { tools: [{ type: 'function' }] }), '<|begin_of_text|>Hi1');
    } finally {
      tok.close();
    }
  });
});

describe("a client's request that cannot be tokenised is a typed error", () => {
  let tok: ModelTokenizer;
  before(async () => {
    tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { maxJobChars: 10_000 });
  });
  after(() => tok.close());

  it('image parts make a request unmatchable; malformed messages are refused', async () => {
    await rejectsWith(tok.encodeChat([{ role: 'user', content: [{ type: 'text', text: 'see' }, { type: 'image_url', image_url: { url: 'x' } }] }]), 'multimodal');
    await rejectsWith(tok.encodeChat([{ content: 'no role' } as never]), 'invalid-message');
    await rejectsWith(tok.encodeChat([{ role: 'user', content: 42 } as never]), 'invalid-message');
  });

  it('a text over the per-job bound', async () => {
    await rejectsWith(tok.encodePrompt('x'.repeat(10_001)), 'too-large');
  });
});

describe('the template raising for a message shape', () => {
  let dir: string;
  let tok: ModelTokenizer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'infergate-tok-'));
    await symlink(JSON_PATH, join(dir, 'tokenizer.json'));
    const config = JSON.parse(await readFile(CONFIG_PATH, 'utf8')) as Record<string, unknown>;
    config['chat_template'] =
      "{% for m in messages %}{% if m['role'] not in ['user', 'assistant'] %}{{ raise_exception('Conversation roles must be user or assistant') }}{% endif %}{{ m['content'] }}{% endfor %}";
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(config));
    tok = await loadTokenizer(dir);
  });
  after(async () => {
    tok.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('is TokenizeError("template") with the template\'s message, and the tokenizer keeps working', async () => {
    await assert.rejects(tok.encodeChat([{ role: 'system', content: 'x' }]), (err: unknown) => {
      assert.ok(err instanceof TokenizeError);
      assert.equal(err.reason, 'template');
      assert.match(err.message, /roles must be user or assistant/);
      return true;
    });
    assert.ok((await tok.encodeChat([{ role: 'user', content: 'fine' }])).length > 0);
  });
});

describe('the worker queue and the worker itself', () => {
  it('over the queue bound, a job is refused at once (busy) and counted', async () => {
    const tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { maxQueuedJobs: 1, cacheTokens: 0 });
    try {
      const first = tok.encodePrompt('a long text. '.repeat(2000));
      await rejectsWith(tok.encodePrompt('another text'), 'busy');
      assert.ok((await first).length > 0);
      assert.equal(tok.counters().queueRejections, 1);
      assert.ok((await tok.encodePrompt('another text')).length > 0, 'free again once the queue drains');
    } finally {
      tok.close();
    }
  });

  it('a worker that dies fails its jobs (never hangs) and is replaced for the next one', async () => {
    const tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { cacheTokens: 0 });
    try {
      const job = tok.encodePrompt('words and more words. '.repeat(5000));
      tokenizerThread().kill();
      await rejectsWith(job, 'worker');
      assert.deepEqual([...(await tok.encodePrompt('Hello World'))], [9906, 4435], 'a fresh worker reloads the tokenizer');
      const c = tok.counters();
      assert.equal(c.workerErrors, 1);
      assert.ok(c.workerRestarts >= 1);
    } finally {
      tok.close();
    }
  });

  it('close() ends the worker, and later calls fail as closed', async () => {
    const a = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
    const b = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
    assert.equal(tokenizerThread().running, true);
    a.close();
    assert.equal(tokenizerThread().running, true, 'still used by b');
    b.close();
    assert.equal(tokenizerThread().running, false);
    await rejectsWith(b.encodePrompt('x'), 'closed');
  });
});

describe('a job the worker does not answer in time', () => {
  it('fails (worker), the stuck worker is replaced, and the next job is served', async () => {
    const tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR, { stallMs: 300, cacheTokens: 0 });
    try {
      // One 200 000-letter word: byte-pair merging it takes seconds (~20 µs per character).
      await rejectsWith(tok.encodePrompt('a'.repeat(200_000)), 'worker');
      assert.deepEqual([...(await tok.encodePrompt('Hello World'))], [9906, 4435]);
      assert.ok(tok.counters().workerRestarts >= 1);
    } finally {
      tok.close();
    }
  });
});
