// test_memjs.js: memjs (npm), a binary-protocol-only client, against a running server.
//
// Run by test_memjs.py, which starts the server (two shards), installs the
// pinned memjs into a gitignored directory and runs:
//
//     NODE_PATH=<dir>/node_modules node test_memjs.js <port>
//
// Every method of memjs.Client is called (get, set, add, replace, delete,
// increment, decrement, append, prepend, touch, flush, stats, statsWithKey,
// resetStats, quit, close), plus 500 requests in flight at once on the one
// connection memjs keeps, which interleaves keys of both shards. Prints one
// line per test and a summary; exits 1 if any test failed.
'use strict';

const assert = require('assert');
const memjs = require('memjs');

const port = parseInt(process.argv[2], 10);
if (!port) {
  console.error('usage: node test_memjs.js <port>');
  process.exit(2);
}

const quiet = {log: () => {}}; // memjs logs every error status it meets
function client() {
  return memjs.Client.create('127.0.0.1:' + port, {retries: 0, timeout: 5, logger: quiet});
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function statsOf(mc, key) {
  return new Promise((resolve, reject) => {
    mc.statsWithKey(key, (err, server, stats) => (err ? reject(err) : resolve({server, stats})));
  });
}

const tests = [];
function test(name, fn) {
  tests.push({name, fn});
}

test('set_get_strings_and_buffers', async (mc) => {
  assert.strictEqual(await mc.set('str', 'hello'), true);
  const bin = Buffer.from([0, 13, 10, 255, 128, 0x80, 0x81]);
  assert.strictEqual(await mc.set('bin', bin), true);
  assert.strictEqual((await mc.get('str')).value.toString(), 'hello');
  assert.deepStrictEqual((await mc.get('bin')).value, bin);
  const miss = await mc.get('missing');
  assert.strictEqual(miss.value, null);
  assert.strictEqual(miss.flags, null);
});

test('get_returns_flags_extras', async (mc) => {
  await mc.set('k', 'v');
  const {flags} = await mc.get('k');
  assert.deepStrictEqual(flags, Buffer.from([0, 0, 0, 0]));
});

test('large_value', async (mc) => {
  const big = Buffer.alloc(800 * 1024, 'x');
  big.write('start', 0);
  assert.strictEqual(await mc.set('big', big), true);
  assert.deepStrictEqual((await mc.get('big')).value, big);
});

test('too_large_value_is_an_error', async (mc) => {
  await mc.set('big', 'old');
  await assert.rejects(mc.set('big', Buffer.alloc(2 * 1024 * 1024)), /Value too large/);
  assert.strictEqual((await mc.get('big')).value, null);
  assert.strictEqual(await mc.set('after', 'fine'), true); // the stream is still in step
  assert.strictEqual((await mc.get('after')).value.toString(), 'fine');
});

test('add_replace', async (mc) => {
  assert.strictEqual(await mc.add('k', 'one'), true);
  assert.strictEqual(await mc.add('k', 'two'), false);
  assert.strictEqual((await mc.get('k')).value.toString(), 'one');
  assert.strictEqual(await mc.replace('k', 'three'), true);
  assert.strictEqual((await mc.get('k')).value.toString(), 'three');
  assert.strictEqual(await mc.replace('nokey', 'x'), false);
});

test('delete', async (mc) => {
  await mc.set('k', 'v');
  assert.strictEqual(await mc.delete('k'), true);
  assert.strictEqual(await mc.delete('k'), false);
  assert.strictEqual((await mc.get('k')).value, null);
});

test('increment_decrement', async (mc) => {
  // a miss creates the key with `initial`
  assert.deepStrictEqual(await mc.increment('n', 5, {initial: 10}), {success: true, value: 10});
  assert.deepStrictEqual(await mc.increment('n', 5), {success: true, value: 15});
  // (memjs 1.3.2's decrement needs an options object)
  assert.deepStrictEqual(await mc.decrement('n', 20, {}), {success: true, value: 0});
  assert.strictEqual((await mc.get('n')).value.toString().trim(), '0');
  assert.deepStrictEqual(await mc.decrement('fresh', 1, {initial: 3}), {success: true, value: 3});
  await mc.set('text', 'abc');
  await assert.rejects(mc.increment('text', 1), /non-numeric/);
});

test('append_prepend', async (mc) => {
  await assert.rejects(mc.append('nokey', 'x'), /Item not stored/);
  await mc.set('k', 'mid');
  assert.strictEqual(await mc.append('k', '-end'), true);
  // memjs 1.3.2's prepend sends the APPEND opcode (a client bug): the
  // server appends, as memcached does
  assert.strictEqual(await mc.prepend('k', '+'), true);
  assert.strictEqual((await mc.get('k')).value.toString(), 'mid-end+');
});

test('touch_and_expiry', async (mc) => {
  await mc.set('kept', 'v', {expires: 1});
  await mc.set('short', 'v', {expires: 1});
  assert.strictEqual(await mc.touch('kept', 100), true);
  assert.strictEqual(await mc.touch('missing', 100), false);
  await sleep(2100);
  assert.strictEqual((await mc.get('kept')).value.toString(), 'v');
  assert.strictEqual((await mc.get('short')).value, null);
});

test('flush', async (mc) => {
  for (let i = 0; i < 20; i++) await mc.set('f' + i, 'v');
  const results = await mc.flush();
  assert.deepStrictEqual(Object.values(results), [true]);
  for (let i = 0; i < 20; i++) assert.strictEqual((await mc.get('f' + i)).value, null);
});

test('stats', async (mc) => {
  await mc.set('s', 'v');
  await mc.get('s');
  const stats = await new Promise((resolve, reject) => {
    mc.stats((err, server, s) => (err ? reject(err) : resolve(s)));
  });
  assert.ok(parseInt(stats.pid, 10) > 0, stats.pid);
  assert.strictEqual(stats.threads, '2');
  assert.ok(parseInt(stats.get_hits, 10) >= 1);
  assert.ok(parseInt(stats.curr_items, 10) >= 1);
  const {stats: settings} = await statsOf(mc, 'settings');
  assert.strictEqual(settings.item_size_max, String(1024 * 1024));
  const {stats: slabs} = await statsOf(mc, 'slabs');
  assert.ok('active_slabs' in slabs);
});

test('reset_stats', async (mc) => {
  await mc.get('miss');
  await new Promise((resolve, reject) => mc.resetStats((err) => (err ? reject(err) : resolve())));
  const {stats} = await statsOf(mc, '');
  assert.strictEqual(stats.get_misses, '0');
});

test('many_in_flight_across_shards', async (mc) => {
  const n = 500;
  const sets = [];
  for (let i = 0; i < n; i++) sets.push(mc.set('p:' + i, 'value:' + i));
  assert.ok((await Promise.all(sets)).every((ok) => ok === true));
  const gets = [];
  for (let i = 0; i < n; i++) gets.push(mc.get('p:' + i));
  const values = await Promise.all(gets);
  values.forEach((r, i) => assert.strictEqual(r.value.toString(), 'value:' + i));
  const misses = await Promise.all([...Array(50).keys()].map((i) => mc.get('none:' + i)));
  assert.ok(misses.every((r) => r.value === null));
});

test('quit_and_close', async () => {
  const mc = client();
  await mc.set('q', 'v');
  mc.quit(); // QUIT: the server answers, then closes
  await sleep(100);
  const again = client();
  assert.strictEqual((await again.get('q')).value.toString(), 'v');
  again.close();
});

async function main() {
  let passed = 0;
  let failed = 0;
  for (const t of tests) {
    const mc = client();
    try {
      await mc.flush();
      await t.fn(mc);
      console.log('ok - ' + t.name);
      passed++;
    } catch (e) {
      console.log('not ok - ' + t.name + ': ' + (e && e.stack ? e.stack : e));
      failed++;
    } finally {
      mc.close();
    }
  }
  console.log('memjs: ' + passed + ' passed, ' + failed + ' failed');
  process.exit(failed === 0 ? 0 : 1);
}

main();
