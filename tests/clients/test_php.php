<?php
// test_php.php: PHP's two memcached extensions as PHP applications use them,
// side by side on the same servers (argv[1]: "host:port,host:port,..."):
// pecl memcache (Debian's php-memcache: the Memcache class, its own text
// protocol code) and pecl memcached (php-memcached: libmemcached), each with
// every server in its pool. Prints one line per case and
// "php: N passed, M failed"; exits 1 on any failure. Run by test_php.py.
$servers = array_map(function ($s) { return explode(":", $s); }, explode(",", $argv[1]));
$passed = 0;
$failed = 0;

function check($name, $fn) {
    global $passed, $failed;
    try {
        $fn();
        $passed++;
        echo "ok   $name\n";
    } catch (Throwable $e) {
        $failed++;
        echo "FAIL $name: " . $e->getMessage() . " at line " . $e->getLine() . "\n";
    }
}

function eq($want, $got, $what = "") {
    if ($want !== $got) {
        throw new Exception("$what want " . var_export($want, true) . ", got " . var_export($got, true));
    }
}

$mc = new Memcache();
foreach ($servers as $s) {
    $mc->addServer($s[0], (int)$s[1]);
}
$md = new Memcached();
$md->setOption(Memcached::OPT_DISTRIBUTION, Memcached::DISTRIBUTION_CONSISTENT);
foreach ($servers as $s) {
    $md->addServer($s[0], (int)$s[1]);
}

check("memcache: version of every server", function () use ($mc) {
    foreach ($mc->getExtendedStats() as $server => $stats) {
        eq("1.6.18", $stats["version"], $server);
    }
    eq("1.6.18", $mc->getVersion());
});
check("memcache: set/get/delete, strings, arrays, objects", function () use ($mc) {
    $mc->flush();
    eq(true, $mc->set("s", "string"));
    eq("string", $mc->get("s"));
    eq(true, $mc->set("arr", array("a" => 1, "b" => array(2, 3))));
    eq(array("a" => 1, "b" => array(2, 3)), $mc->get("arr"));
    $o = new stdClass();
    $o->x = 5;
    $mc->set("obj", $o);
    eq(5, $mc->get("obj")->x);
    eq(true, $mc->delete("s"));
    eq(false, $mc->get("s"));
});
check("memcache: multi-get across the pool", function () use ($mc) {
    $keys = array();
    for ($i = 0; $i < 200; $i++) {
        $mc->set("mk$i", "v$i");
        $keys[] = "mk$i";
    }
    $got = $mc->get(array_merge($keys, array("nope")));
    eq(200, count($got));
    eq("v77", $got["mk77"]);
});
check("memcache: add/replace/increment/decrement", function () use ($mc) {
    eq(true, $mc->add("a", "1"));
    eq(false, $mc->add("a", "2"));
    eq(true, $mc->replace("a", "5"));
    eq(8, $mc->increment("a", 3));
    eq(6, $mc->decrement("a", 2));
    eq(false, $mc->increment("absent", 1));
});
check("memcache: compressed large value", function () use ($mc) {
    $big = str_repeat("abcdef", 300000);
    eq(true, $mc->set("big", $big, MEMCACHE_COMPRESSED));
    eq($big, $mc->get("big"));
});
check("memcache: expiry", function () use ($mc) {
    $mc->set("short", "x", 0, 1);
    $mc->set("long", "y", 0, 60);
    sleep(2);
    eq(false, $mc->get("short"));
    eq("y", $mc->get("long"));
});
check("memcached: set/get/getMulti/cas", function () use ($md) {
    eq(true, $md->set("d1", array(1, 2)));
    eq(array(1, 2), $md->get("d1"));
    $md->setMulti(array("d2" => "two", "d3" => 3));
    $got = $md->getMulti(array("d2", "d3", "d4"));
    ksort($got); // libmemcached returns the servers' replies in arrival order
    eq(array("d2" => "two", "d3" => 3), $got);
    $r = $md->get("d2", null, Memcached::GET_EXTENDED);
    eq(true, $md->cas($r["cas"], "d2", "TWO"));
    eq(false, $md->cas($r["cas"], "d2", "again"));
    eq(Memcached::RES_DATA_EXISTS, $md->getResultCode());
});
check("memcached: touch; binary protocol increment with an initial value", function () use ($md, $servers) {
    $md->set("t", "x", 1);
    eq(true, $md->touch("t", 60));
    sleep(2);
    eq("x", $md->get("t"));
    $bin = new Memcached();
    $bin->setOption(Memcached::OPT_BINARY_PROTOCOL, true);
    foreach ($servers as $s) {
        $bin->addServer($s[0], (int)$s[1]);
    }
    eq(3, $bin->increment("n", 1, 3));
    eq(4, $bin->increment("n", 1, 3));
    eq(true, $bin->set("bk", "binary"));
    eq("binary", $bin->get("bk"));
});
check("both extensions see each other's plain strings (one server: their hashing differs)",
      function () use ($servers) {
    $one = new Memcache();
    $one->addServer($servers[0][0], (int)$servers[0][1]);
    $two = new Memcached();
    $two->addServer($servers[0][0], (int)$servers[0][1]);
    $one->set("shared", "from memcache");
    eq("from memcache", $two->get("shared"));
    $two->set("shared2", "from memcached");
    eq("from memcached", $one->get("shared2"));
});
echo "php: $passed passed, $failed failed\n";
exit($failed === 0 ? 0 : 1);
