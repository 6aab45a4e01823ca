import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadTokenizer, type ModelTokenizer } from '../../src/tokens/index.js';
import { LLAMA3_TOKENIZER_DIR } from '../support/llama3-tokenizer.js';

const CHAT_TEXT =
  '<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';
const CHAT_IDS = [128000, 128006, 882, 128007, 271, 13347, 1070, 128009, 128006, 78191, 128007, 271];

describe("Llama 3's tokenizer, as vLLM applies it", () => {
  let tok: ModelTokenizer;
  before(async () => {
    tok = await loadTokenizer(LLAMA3_TOKENIZER_DIR);
  });
  after(() => tok.close());

  it('tokenises a completions prompt to the known ids (this tokenizer.json adds no BOS: ByteLevel post-processor)', async () => {
    assert.deepEqual([...(await tok.encodePrompt('Hello World'))], [9906, 4435]);
  });

  it('renders a chat with the model template and tokenises it without adding specials', async () => {
    assert.equal(tok.renderChat([{ role: 'user', content: 'Hi there' }]), CHAT_TEXT);
    const ids = await tok.encodeChat([{ role: 'user', content: 'Hi there' }]);
    assert.deepEqual([...ids], CHAT_IDS);
    assert.equal(ids[0], 128000, 'BOS written by the template, once');
  });

  it('joins text content parts with "\\n" (vLLM string content format)', async () => {
    const parts = await tok.encodeChat([{ role: 'user', content: [{ type: 'text', text: 'Hi' }, { type: 'text', text: 'there' }] }]);
    const joined = await tok.encodeChat([{ role: 'user', content: 'Hi\nthere' }]);
    assert.deepEqual([...parts], [...joined]);
  });

  it('special token text inside a prompt is the special token (as HF tokenizers split on added tokens)', async () => {
    assert.deepEqual([...(await tok.encodePrompt('<|begin_of_text|>Hello<|eot_id|>'))], [128000, 9906, 128009]);
  });
});

describe('a tokenizer whose post-processor adds BOS (Llama 3.1-style TemplateProcessing)', () => {
  let dir: string;
  let tok: ModelTokenizer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'infergate-tok-'));
    const json = JSON.parse(await readFile(join(LLAMA3_TOKENIZER_DIR, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
    json['post_processor'] = {
      type: 'Sequence',
      processors: [
        { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
        {
          type: 'TemplateProcessing',
          single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
          pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
          special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [128000], tokens: ['<|begin_of_text|>'] } },
        },
      ],
    };
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(json));
    await symlink(join(LLAMA3_TOKENIZER_DIR, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
    tok = await loadTokenizer(dir);
  });
  after(async () => {
    tok.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('completions get BOS (add_special_tokens=true); chat does not get a second one', async () => {
    assert.deepEqual([...(await tok.encodePrompt('Hello World'))], [128000, 9906, 4435]);
    assert.deepEqual([...(await tok.encodeChat([{ role: 'user', content: 'Hi there' }]))], CHAT_IDS);
  });
});
