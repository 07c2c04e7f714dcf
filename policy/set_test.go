package policy_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heartbeat-go/heartbeat/policy"
)

func TestSetValidate(t *testing.T) {
	bad := []struct {
		s    policy.Set
		want string
	}{
		{policy.Set{Interval: policy.Never{}}, "no detector"},
		{policy.Set{Detector: &policy.Adaptive{}}, "no interval"},
		{policy.Set{Detector: &policy.Fixed{SuspectAfter: 2 * sec, DeadAfter: 3 * sec}, Interval: &policy.Idle{Every: 5 * sec}},
			"suspect timeout 2s must be longer than the ping interval 5s"},
		{policy.Set{Detector: &policy.Fixed{SuspectAfter: 30 * sec, DeadAfter: 30 * sec}, Interval: &policy.Every{Period: 30 * sec}},
			"must be longer than the ping interval"},
		{policy.Set{Detector: &policy.Adaptive{Interval: 2 * sec}, Interval: &policy.AdaptiveInterval{}},
			"must be longer than the ping interval 5s"},
		{policy.Set{Detector: &policy.Adaptive{}, Interval: &policy.Idle{Every: 5 * sec}, Backoff: &policy.FullJitter{}},
			"random source"},
	}
	for _, tc := range bad {
		if err := tc.s.Validate(); !errors.Is(err, policy.ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one about %q", tc.s, err, tc.want)
		}
	}
}

func TestDefault(t *testing.T) {
	d, iv, b := policy.Default()
	if err := (policy.Set{Detector: d, Interval: iv, Backoff: b}).Validate(); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.(*policy.Adaptive); !ok {
		t.Fatalf("default detector %T", d)
	}
	// Each call seeds its own source: two clients must not jitter alike.
	_, _, b2 := policy.Default()
	r := policy.Retry{Attempt: 1, Advice: time.Minute}
	x, _ := b.Next(r)
	y, _ := b2.Next(r)
	if x == y {
		t.Fatalf("two default backoffs drew the same delay %v", x)
	}
	if err := policy.DefaultServerSet().Validate(); err != nil {
		t.Fatal(err)
	}
}
