// loraserve serve through the official OpenAI Node client (npm package `openai`): completions,
// chat, streaming, model = adapter, n > 1, stop, logprobs and each error class. Run by
// server_e2e.py with NODE_PATH pointing at the installed package, LS_BASE_URL and LS_KEY.
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_PATH, 'x.js'));
const OpenAI = require('openai');

const client = new OpenAI({ baseURL: process.env.LS_BASE_URL, apiKey: process.env.LS_KEY, maxRetries: 0 });
let failures = 0;
function check(name, cond, detail) {
  if (!cond) {
    failures++;
    console.log(`FAIL ${name}`, detail === undefined ? '' : JSON.stringify(detail).slice(0, 1500));
  } else {
    console.log(`ok   ${name}`);
  }
}
async function expectError(name, status, fn, code) {
  try {
    await fn();
    check(name, false, 'no error');
  } catch (e) {
    check(name, e instanceof OpenAI.APIError && e.status === status && (!code || e.code === code),
          { status: e.status, code: e.code, message: e.message });
  }
}

const models = await client.models.list();
const ids = models.data.map((m) => m.id);
check('models.list', ids.includes('demo') && ids.includes('pirate'), ids);

const c = await client.completions.create({ model: 'pirate', prompt: 'Hello, world', max_tokens: 8,
  temperature: 0, logprobs: 2, ignore_eos: true });
check('completions', c.object === 'text_completion' && c.choices.length === 1 &&
      c.choices[0].logprobs.tokens.length === 8 && c.usage.completion_tokens === 8, c);

const base = await client.completions.create({ model: 'demo', prompt: 'Hello, world', max_tokens: 8,
  temperature: 0, ignore_eos: true });
check('model = adapter changes output', base.choices[0].text !== c.choices[0].text);

const n = await client.completions.create({ model: 'poet', prompt: 'The sea', max_tokens: 4, n: 3,
  temperature: 1, seed: 3 });
check('n = 3', n.choices.length === 3 && n.choices.map((x) => x.index).join() === '0,1,2', n);

const full = c.choices[0].text;
const stopAt = [...full].findIndex((ch, i) => i > 2 && /[a-z]/.test(ch));
if (stopAt > 0) {
  const stop = full.slice(stopAt, stopAt + 1);
  const s = await client.completions.create({ model: 'pirate', prompt: 'Hello, world', max_tokens: 8,
    temperature: 0, stop: [stop], ignore_eos: true });
  check('stop', s.choices[0].finish_reason === 'stop' && s.choices[0].text === full.slice(0, full.indexOf(stop)),
        { stop, got: s.choices[0].text, full });
}

const messages = [{ role: 'user', content: 'Tell me about the sea.' }];
const chat = await client.chat.completions.create({ model: 'pirate', messages, max_tokens: 6, temperature: 0,
  logprobs: true, top_logprobs: 2, ignore_eos: true });
check('chat', chat.object === 'chat.completion' && chat.choices[0].message.role === 'assistant' &&
      chat.choices[0].logprobs.content.length === 6, chat);

const stream = await client.chat.completions.create({ model: 'pirate', messages, max_tokens: 6, temperature: 0,
  stream: true, stream_options: { include_usage: true }, ignore_eos: true });
let text = '';
let usage = null;
let finish = null;
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const ch of chunk.choices) {
    text += ch.delta?.content ?? '';
    if (ch.finish_reason) finish = ch.finish_reason;
  }
}
check('chat stream', text === chat.choices[0].message.content && usage?.completion_tokens === 6 &&
      finish === 'length', { text, usage, finish });

const cs = await client.completions.create({ model: 'coder', prompt: 'def f(x):', max_tokens: 5, stream: true,
  temperature: 0, ignore_eos: true });
let ctext = '';
for await (const chunk of cs) ctext += chunk.choices[0]?.text ?? '';
const cwhole = await client.completions.create({ model: 'coder', prompt: 'def f(x):', max_tokens: 5,
  temperature: 0, ignore_eos: true });
check('completion stream == whole', ctext === cwhole.choices[0].text, { ctext, whole: cwhole.choices[0].text });

await expectError('400 bad parameter', 400, () => client.completions.create({ model: 'demo', prompt: 'a',
  temperature: 5 }));
await expectError('400 context length', 400, () => client.completions.create({ model: 'demo', prompt: 'a',
  max_tokens: 100000 }), 'context_length_exceeded');
await expectError('404 unknown model', 404, () => client.completions.create({ model: 'no-such-adapter',
  prompt: 'a' }), 'model_not_found');
await expectError('401 bad key', 401, () => new OpenAI({ baseURL: process.env.LS_BASE_URL, apiKey: 'wrong',
  maxRetries: 0 }).models.list(), 'invalid_api_key');
await expectError('413 body too large', 413, () => client.completions.create({ model: 'demo',
  prompt: 'x'.repeat(100000) }));

console.log(failures ? `${failures} failure(s)` : 'all passed');
process.exit(failures ? 1 : 0);
