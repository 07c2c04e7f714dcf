package cluster

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/presence"
)

// Foreign and malformed entries in the keyspace are reported as
// *KeyspaceError and skipped; the valid sessions around them still count.
func TestMalformedKeyspaceSkipped(t *testing.T) {
	r := startRedis(t)
	rc := r.client(t)
	ctx := context.Background()
	b, _ := startNode(t, testConfig(r, "b"))
	join(b, "ann", "s", nil)
	join(b, "bob", "s", presence.Meta{"k": "v"})
	kb := nodeKeys(DefaultPrefix, "b")
	waitFor(t, 3*time.Second, func() bool { return rc.HLen(ctx, kb.sess).Val() == 2 }, func() string { return "b's sessions not in Redis" })
	// Garbage before a starts: its first read of b's set meets it.
	rc.HSet(ctx, kb.sess, "zz", "", "3:ab", "", "2:cy", "{not json")
	rc.SAdd(ctx, DefaultPrefix+":nodes", "bad{id}", "ghost")
	rc.Set(ctx, nodeKeys(DefaultPrefix, "ghost").lease, "not-a-number", 0)
	var mu sync.Mutex
	var errs []error
	cfg := testConfig(r, "a")
	cfg.OnError = func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
	a, ma := startNode(t, cfg)
	sameView(t, 3*time.Second, []string{"ann/s", "bob/s"}, []*Node{a}, []*model{ma})
	// A foreign stream entry: read, reported, then a resync.
	rc.XAdd(ctx, redisXAdd{stream: kb.stream, values: []any{"foo", "bar"}}.args())
	join(b, "cy", "s", nil)
	sameView(t, 3*time.Second, []string{"ann/s", "bob/s", "cy/s"}, []*Node{a}, []*model{ma})
	ma.check()
	mu.Lock()
	defer mu.Unlock()
	want := []string{`"zz"`, `"3:ab"`, `"2:cy"`, `"bad{id}"`, `hb:{n:ghost}:lease`, `hb:{n:b}:ev`}
	var got []string
	for _, err := range errs {
		var ke *KeyspaceError
		if !errors.As(err, &ke) || !errors.Is(err, ErrKeyspace) {
			t.Errorf("error %v is not a *KeyspaceError", err)
			continue
		}
		got = append(got, err.Error())
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.Contains(g, w)
		}
		if !found {
			t.Errorf("no keyspace error mentions %s; got %q", w, got)
		}
	}
	if a.Stats().KeyspaceErrors == 0 {
		t.Error("Stats.KeyspaceErrors is 0")
	}
}

func FuzzDecodeEntry(f *testing.F) {
	f.Add("i\x001\x00n\x003\x00u3:annt\x00{\"a\":\"b\"}\x00d1:xy\x00c")
	f.Add("i\x001\x00n\x000")
	f.Add("i\x00x\x00n\x001")
	f.Add("u\x00\x00")
	f.Fuzz(func(t *testing.T, s string) {
		e, err := decodeEntry("0-1", strings.Split(s, "\x00"))
		if err != nil {
			return
		}
		// What decodes re-encodes to a field list that decodes the same.
		kv := []string{"i", strconvU(e.inc), "n", strconvU(e.n)}
		for _, o := range e.ops {
			f, v := encodeOp(o)
			kv = append(kv, f, v)
		}
		e2, err := decodeEntry("0-1", kv)
		if err != nil || len(e2.ops) != len(e.ops) {
			t.Fatalf("re-encoded %q: %v", kv, err)
		}
	})
}

func FuzzDecodeField(f *testing.F) {
	f.Add("3:annt")
	f.Add("0:")
	f.Add("99999999999:x")
	f.Add("-1:x")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := decodeField(s)
		if err != nil {
			return
		}
		if got := encodeField(k); got != s {
			t.Fatalf("%q decodes to %q, which encodes to %q", s, k, got)
		}
		if k2, err := decodeField(encodeField(sessKey{s, s})); err != nil || k2 != (sessKey{s, s}) {
			t.Fatalf("round trip of %q: %v %v", s, k2, err)
		}
	})
}
