package policy

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is wrapped by every error a policy's Validate returns.
var ErrInvalidConfig = errors.New("policy: invalid configuration")

// ConfigError names the policy whose settings make no sense, what is wrong
// and what would be right. It wraps ErrInvalidConfig.
type ConfigError struct {
	Policy  string // which policy, e.g. "adaptive detector"
	Problem string // what is wrong and what would be right
}

func (e *ConfigError) Error() string { return "policy: " + e.Policy + ": " + e.Problem }

// Unwrap returns ErrInvalidConfig.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func invalid(policy, format string, args ...any) error {
	return &ConfigError{Policy: policy, Problem: fmt.Sprintf(format, args...)}
}

// GaveUpError says why a Backoff stopped. It wraps ErrGaveUp.
type GaveUpError struct {
	Attempts int           // dials made in the streak
	Elapsed  time.Duration // time since the streak began
	Limit    string        // which limit was reached
	// Cause is the configuration error that kept the backoff from computing
	// a delay (a *ConfigError), or nil when a limit was reached.
	Cause error
}

func (e *GaveUpError) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("policy: gave up reconnecting after %d attempts in %v: %s: %v", e.Attempts, e.Elapsed, e.Limit, e.Cause)
	}
	return fmt.Sprintf("policy: gave up reconnecting after %d attempts in %v: %s reached", e.Attempts, e.Elapsed, e.Limit)
}

// Unwrap returns ErrGaveUp.
func (e *GaveUpError) Unwrap() error { return ErrGaveUp }

// gaveUp reports a limit reached before dial r.Attempt.
func gaveUp(r Retry, limit string) error {
	return &GaveUpError{Attempts: max(r.Attempt-1, 0), Elapsed: r.Elapsed, Limit: limit}
}

// misconfigured reports a backoff whose settings make no sense: the Machine
// closes rather than reconnect at a rate nobody chose.
func misconfigured(r Retry, err error) error {
	return &GaveUpError{Attempts: max(r.Attempt-1, 0), Elapsed: r.Elapsed, Limit: "invalid configuration", Cause: err}
}
