// gomemcache_cluster_test.go: corecache's own cases for Go's gomemcache
// (Debian's golang-github-bradfitz-gomemcache-dev), compiled into the
// library's package beside its own memcache_test.go by test_gomemcache.py.
// GOMEMCACHE_CLUSTER lists three servers, comma-separated.
package memcache

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

func clusterClient(t *testing.T) (*Client, []string) {
	addrs := strings.Split(os.Getenv("GOMEMCACHE_CLUSTER"), ",")
	if len(addrs) < 2 {
		t.Fatalf("GOMEMCACHE_CLUSTER must list servers, got %q", os.Getenv("GOMEMCACHE_CLUSTER"))
	}
	c := New(addrs...)
	c.Timeout = 2 * time.Second
	if err := c.FlushAll(); err != nil {
		t.Fatalf("FlushAll: %v", err)
	}
	return c, addrs
}

func TestClusterSpreadAndGetMulti(t *testing.T) {
	c, addrs := clusterClient(t)
	var keys []string
	for i := 0; i < 300; i++ {
		k := fmt.Sprintf("spread:%d", i)
		keys = append(keys, k)
		if err := c.Set(&Item{Key: k, Value: []byte(k), Flags: uint32(i)}); err != nil {
			t.Fatalf("Set %s: %v", k, err)
		}
	}
	got, err := c.GetMulti(append(keys, "missing"))
	if err != nil {
		t.Fatalf("GetMulti: %v", err)
	}
	if len(got) != 300 {
		t.Fatalf("GetMulti found %d of 300", len(got))
	}
	for i, k := range keys {
		if it := got[k]; string(it.Value) != k || it.Flags != uint32(i) {
			t.Fatalf("GetMulti %s = %q flags %d", k, it.Value, it.Flags)
		}
	}
	per := map[string]int{}
	for _, k := range keys {
		a, _ := c.selector.PickServer(k)
		per[a.String()]++
	}
	if len(per) != len(addrs) {
		t.Fatalf("keys landed on %d of %d servers: %v", len(per), len(addrs), per)
	}
}

func TestClusterCasTouchIncr(t *testing.T) {
	c, _ := clusterClient(t)
	if err := c.Set(&Item{Key: "cas", Value: []byte("one")}); err != nil {
		t.Fatal(err)
	}
	it, err := c.Get("cas")
	if err != nil {
		t.Fatal(err)
	}
	it.Value = []byte("two")
	if err := c.CompareAndSwap(it); err != nil {
		t.Fatalf("CompareAndSwap: %v", err)
	}
	it.Value = []byte("three")
	if err := c.CompareAndSwap(it); err != ErrCASConflict {
		t.Fatalf("stale CompareAndSwap: %v, want ErrCASConflict", err)
	}
	if err := c.Set(&Item{Key: "ttl", Value: []byte("x"), Expiration: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.Touch("ttl", 10); err != nil {
		t.Fatalf("Touch: %v", err)
	}
	time.Sleep(2200 * time.Millisecond)
	if _, err := c.Get("ttl"); err != nil {
		t.Fatalf("touched item gone: %v", err)
	}
	// a negative Expiration is "already expired", in step afterwards
	if err := c.Set(&Item{Key: "gone", Value: []byte("x"), Expiration: -1}); err != nil {
		t.Fatalf("Set with Expiration -1: %v", err)
	}
	if _, err := c.Get("gone"); err != ErrCacheMiss {
		t.Fatalf("Get after Expiration -1: %v, want ErrCacheMiss", err)
	}
	if err := c.Set(&Item{Key: "n", Value: []byte("18446744073709551614")}); err != nil {
		t.Fatal(err)
	}
	if v, err := c.Increment("n", 1); err != nil || v != 18446744073709551615 {
		t.Fatalf("Increment to 2^64-1: %d %v", v, err)
	}
	if v, err := c.Increment("n", 2); err != nil || v != 1 {
		t.Fatalf("Increment wraps: %d %v", v, err)
	}
	if _, err := c.Increment("absent", 1); err != ErrCacheMiss {
		t.Fatalf("Increment absent: %v", err)
	}
	big := make([]byte, 1000*1024)
	if err := c.Set(&Item{Key: "big", Value: big}); err != nil {
		t.Fatalf("Set 1000 KiB: %v", err)
	}
	if err := c.Set(&Item{Key: "toobig", Value: make([]byte, 2*1024*1024)}); err == nil {
		t.Fatalf("Set 2 MiB succeeded, want an error")
	}
	if err := c.Set(&Item{Key: "after", Value: []byte("in step")}); err != nil {
		t.Fatal(err)
	}
	if it, err := c.Get("after"); err != nil || string(it.Value) != "in step" {
		t.Fatalf("after a refused set: %v %v", it, err)
	}
}
