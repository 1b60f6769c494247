// test_node.js: Node.js clients as their users run them, against the servers
// given as the first argument ("host:port,host:port,..."):
//   - `memcached` (text protocol, consistent hashing over the servers), whose
//     version() reads the last x.y.z of the VERSION line (issue 16);
//   - Keyv with @keyv/memcache (memjs underneath, binary protocol);
//   - cache-manager 7 over that Keyv store.
// Prints one line per case and "node: N passed, M failed"; exits 1 on any
// failure. Run by test_node.py, which installs the pinned npm packages.
"use strict";
const assert = require("assert");
const Memcached = require("memcached");
const { Keyv } = require("keyv");
const KeyvMemcacheModule = require("@keyv/memcache");
const KeyvMemcache = KeyvMemcacheModule.KeyvMemcache || KeyvMemcacheModule.default || KeyvMemcacheModule;
const { createCache } = require("cache-manager");

const servers = process.argv[2].split(",");
let passed = 0;
let failed = 0;

async function check(name, fn) {
  try {
    await fn();
    passed++;
    console.log("ok   " + name);
  } catch (e) {
    failed++;
    console.log("FAIL " + name + ": " + (e && e.stack ? e.stack.split("\n").slice(0, 3).join(" | ") : e));
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function promisify(client) {
  const p = {};
  for (const m of ["get", "gets", "getMulti", "set", "add", "replace", "append", "prepend", "cas", "del",
                   "incr", "decr", "touch", "version", "stats", "flush"]) {
    p[m] = (...args) => new Promise((resolve, reject) =>
      client[m](...args, (err, res) => (err ? reject(err) : resolve(res))));
  }
  return p;
}

async function main() {
  const raw = new Memcached(servers, { retries: 0, timeout: 2000, poolSize: 4 });
  const mc = promisify(raw);

  await check("memcached: version parses as 1.6.18 on every server", async () => {
    const versions = await mc.version();
    assert.strictEqual(versions.length, servers.length);
    for (const v of versions) {
      assert.strictEqual(v.version, "1.6.18");
      assert.deepStrictEqual([v.major, v.minor, v.bugfix].map(String), ["1", "6", "18"]);
    }
  });
  await check("memcached: set/get/del across servers", async () => {
    await mc.flush();
    const keys = [];
    for (let i = 0; i < 150; i++) {
      keys.push("node:" + i);
      assert.strictEqual(await mc.set("node:" + i, "v" + i, 0), true);
    }
    const got = await mc.getMulti(keys.concat(["missing"]));
    assert.strictEqual(Object.keys(got).length, 150);
    assert.strictEqual(got["node:42"], "v42");
    assert.strictEqual(await mc.del("node:1"), true);
    assert.strictEqual(await mc.get("node:1"), undefined);
  });
  await check("memcached: objects, numbers and buffers round-trip", async () => {
    await mc.set("obj", { a: [1, 2, { b: "c" }] }, 0);
    assert.deepStrictEqual(await mc.get("obj"), { a: [1, 2, { b: "c" }] });
    await mc.set("num", 12345, 0);
    assert.strictEqual(await mc.get("num"), 12345);
    const buf = Buffer.from([0, 1, 2, 13, 10, 255]);
    await mc.set("buf", buf, 0);
    assert.ok(Buffer.from(await mc.get("buf")).equals(buf));
  });
  await check("memcached: add/replace/append/prepend", async () => {
    assert.strictEqual(await mc.add("ar", "1", 0), true);
    await assert.rejects(mc.add("ar", "2", 0));
    assert.strictEqual(await mc.replace("ar", "3", 0), true);
    assert.strictEqual(await mc.append("ar", "4"), true);
    assert.strictEqual(await mc.prepend("ar", "2"), true);
    assert.strictEqual(await mc.get("ar"), "234");
  });
  await check("memcached: incr/decr", async () => {
    await mc.set("counter", "10", 0);
    assert.strictEqual(await mc.incr("counter", 5), 15);
    assert.strictEqual(await mc.decr("counter", 20), 0);
    assert.strictEqual(await mc.incr("absent", 1), false);
  });
  await check("memcached: gets/cas", async () => {
    await mc.set("cas", "one", 0);
    const g = await mc.gets("cas");
    assert.ok(g.cas);
    assert.strictEqual(await mc.cas("cas", "two", g.cas, 0), true);
    assert.strictEqual(await mc.cas("cas", "three", g.cas, 0), false);
    assert.strictEqual(await mc.get("cas"), "two");
  });
  await check("memcached: lifetimes and touch", async () => {
    await mc.set("short", "x", 1);
    await mc.set("long", "y", 1);
    assert.strictEqual(await mc.touch("long", 10), true);
    await sleep(2200);
    assert.strictEqual(await mc.get("short"), undefined);
    assert.strictEqual(await mc.get("long"), "y");
  });
  await check("memcached: stats from every server", async () => {
    const stats = await mc.stats();
    assert.strictEqual(stats.length, servers.length);
    for (const s of stats) assert.strictEqual(String(s.version), "1.6.18");
  });
  raw.end();

  const keyv = new Keyv({ store: new KeyvMemcache(servers.join(",")), namespace: "kv" });
  await check("keyv/@keyv/memcache: set/get/delete/has", async () => {
    assert.strictEqual(await keyv.set("a", { deep: [1, 2] }), true);
    assert.deepStrictEqual(await keyv.get("a"), { deep: [1, 2] });
    assert.strictEqual(await keyv.has("a"), true);
    assert.strictEqual(await keyv.delete("a"), true);
    assert.strictEqual(await keyv.get("a"), undefined);
  });
  await check("keyv/@keyv/memcache: ttl in milliseconds", async () => {
    await keyv.set("t", "soon", 1000);
    await keyv.set("u", "later", 60000);
    await sleep(2200);
    assert.strictEqual(await keyv.get("t"), undefined);
    assert.strictEqual(await keyv.get("u"), "later");
  });
  await check("keyv/@keyv/memcache: getMany", async () => {
    await keyv.set("m1", 1);
    await keyv.set("m2", 2);
    assert.deepStrictEqual(await keyv.get(["m1", "m2", "m3"]), [1, 2, undefined]);
  });

  const cache = createCache({ stores: [keyv] });
  await check("cache-manager: set/get/del/wrap", async () => {
    await cache.set("cm", "value", 60000);
    assert.strictEqual(await cache.get("cm"), "value");
    let calls = 0;
    const make = async () => { calls++; return "wrapped"; };
    assert.strictEqual(await cache.wrap("w", make, 60000), "wrapped");
    assert.strictEqual(await cache.wrap("w", make, 60000), "wrapped");
    assert.strictEqual(calls, 1);
    assert.strictEqual(await cache.del("cm"), true);
    assert.strictEqual(await cache.get("cm"), undefined);
  });
  await check("cache-manager: mset/mget and ttl", async () => {
    await cache.mset([{ key: "x1", value: 1 }, { key: "x2", value: 2, ttl: 1000 }]);
    assert.deepStrictEqual(await cache.mget(["x1", "x2"]), [1, 2]);
    await sleep(2200);
    assert.deepStrictEqual(await cache.mget(["x1", "x2"]), [1, undefined]);
  });
  await keyv.disconnect?.();

  console.log("node: " + passed + " passed, " + failed + " failed");
  process.exit(failed === 0 ? 0 : 1);
}

main().catch((e) => {
  console.log("FAIL main: " + (e && e.stack));
  process.exit(1);
});
