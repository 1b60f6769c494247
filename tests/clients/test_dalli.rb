# test_dalli.rb: Ruby's dalli client and ActiveSupport's MemCacheStore (Rails'
# :mem_cache_store) as Rails applications configure them, against the servers
# given as arguments ("host:port,host:port"). Prints one line per case and
# "dalli: N passed, M failed"; exits 1 on any failure. Run by test_dalli.py.
require "dalli"
require "active_support"
require "active_support/cache"
require "active_support/cache/mem_cache_store"
require "logger"

servers = ARGV.fetch(0).split(",")
$passed = 0
$failed = 0

def check(name)
  yield
  $passed += 1
  puts "ok   #{name}"
rescue StandardError => e
  $failed += 1
  puts "FAIL #{name}: #{e.class}: #{e.message}"
  puts e.backtrace.first(3).join("\n")
end

def eq(want, got, what = "")
  raise "#{what} want #{want.inspect}, got #{got.inspect}" unless want == got
end

Dalli.logger = Logger.new(nil)
dc = Dalli::Client.new(servers, namespace: "t", compress: true)
store = ActiveSupport::Cache::MemCacheStore.new(*servers, namespace: "rails", expires_in: 3600)
binary_dc = Dalli::Client.new(servers) # dalli 3.0 speaks the binary protocol

check("dalli set/get/delete") do
  dc.flush
  eq(true, !!dc.set("k", "v"))
  eq("v", dc.get("k"))
  eq(true, dc.delete("k"))
  eq(nil, dc.get("k"))
end
check("dalli add/replace/append/prepend") do
  eq(true, !!dc.add("a", "1", 0, raw: true))
  eq(false, !!dc.add("a", "2", 0, raw: true))
  eq(true, !!dc.replace("a", "3", 0, raw: true))
  eq(true, !!dc.append("a", "4"))
  eq(true, !!dc.prepend("a", "2"))
  eq("234", dc.get("a"))
end
check("dalli incr/decr with initial value") do
  eq(10, dc.incr("counter", 1, nil, 10))
  eq(15, dc.incr("counter", 5))
  eq(12, dc.decr("counter", 3))
  eq(0, dc.decr("counter", 100))
end
check("dalli cas") do
  dc.set("c", "one")
  eq(true, !!dc.cas("c") { |v| v + "two" })
  eq("onetwo", dc.get("c"))
  eq(nil, dc.cas("missing") { |v| "x" })
end
check("dalli get_multi across servers") do
  keys = (1..200).map { |i| "m#{i}" }
  keys.each { |k| dc.set(k, k * 2) }
  got = dc.get_multi(keys + ["none"])
  eq(200, got.size)
  eq("m7m7", got["m7"])
end
check("dalli touch and expiry") do
  dc.set("ttl", "x", 1)
  eq(true, !!dc.touch("ttl", 10))
  sleep 2.2
  eq("x", dc.get("ttl"))
  dc.set("short", "y", 1)
  sleep 2.2
  eq(nil, dc.get("short"))
end
check("dalli large compressed value") do
  big = "z" * 2_000_000 # compressed below 1 MB
  eq(true, !!dc.set("big", big))
  eq(big, dc.get("big"))
end
check("dalli binary-safe values and unicode keys") do
  val = (0..255).map(&:chr).join.b * 10
  dc.set("bin", val, 0, raw: true)
  eq(val, dc.get("bin").b)
  dc.set("ключ", "значение")
  eq("значение", dc.get("ключ"))
end
check("dalli stats and version from every server") do
  eq(servers.size, dc.stats.size)
  dc.version.each_value { |v| eq("1.6.18", v) }
end
check("dalli plain client (no namespace)") do
  eq(true, !!binary_dc.set("plain", { "a" => [1, 2] }))
  eq({ "a" => [1, 2] }, binary_dc.get("plain"))
end
check("MemCacheStore write/read/exist?/delete") do
  store.clear
  eq(true, !!store.write("user/1", { name: "ann" }))
  eq({ name: "ann" }, store.read("user/1"))
  eq(true, store.exist?("user/1"))
  eq(true, store.delete("user/1"))
  eq(false, store.exist?("user/1"))
end
check("MemCacheStore fetch") do
  calls = 0
  2.times { eq("computed", store.fetch("f") { calls += 1; "computed" }) }
  eq(1, calls)
  eq("forced", store.fetch("f", force: true) { "forced" })
end
check("MemCacheStore unless_exist, expires_in and race_condition_ttl") do
  eq(true, !!store.write("u", 1, unless_exist: true))
  eq(false, !!store.write("u", 2, unless_exist: true))
  eq(1, store.read("u"))
  store.write("e", "soon", expires_in: 1)
  sleep 2.2
  eq(nil, store.read("e"))
  store.write("r", "old", expires_in: 1, race_condition_ttl: 5)
  sleep 1.5
  eq("new", store.fetch("r", expires_in: 10, race_condition_ttl: 5) { "new" })
end
check("MemCacheStore increment/decrement (raw)") do
  store.write("hits", 5, raw: true)
  eq(6, store.increment("hits"))
  eq(4, store.decrement("hits", 2))
  eq(1, store.increment("fresh", 1, initial: 0)) if ActiveSupport::VERSION::MAJOR >= 7
end
check("MemCacheStore read_multi/write_multi/fetch_multi") do
  store.write_multi("x1" => 1, "x2" => 2, "x3" => 3)
  eq({ "x1" => 1, "x3" => 3 }, store.read_multi("x1", "x3", "x9"))
  got = store.fetch_multi("x2", "x4") { |k| "made #{k}" }
  eq({ "x2" => 2, "x4" => "made x4" }, got)
end
check("MemCacheStore long and odd keys are normalized") do
  key = "k" * 400 + " with spaces\tand\ncontrol"
  eq(true, !!store.write(key, "long"))
  eq("long", store.read(key))
end
check("MemCacheStore expires_in: 0 and negative") do
  store.write("zero", "z", expires_in: 0)
  store.write("after_zero", "in step")
  eq("in step", store.read("after_zero"))
end

puts "dalli: #{$passed} passed, #{$failed} failed"
exit($failed.zero? ? 0 : 1)
