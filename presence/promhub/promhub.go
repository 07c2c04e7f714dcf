// Package promhub exports a presence hub's state as Prometheus metrics.
// It is the only package of this module that imports
// github.com/prometheus/client_golang: the hub and the core do not
// (TestCoreDoesNotImportPrometheus).
//
// Wire it in three places: the hub's Observe hook (state changes, verdicts,
// redials), the Collector for what is read at scrape time (the hub's
// Stats, and an nbiows.Server's write queues), and, where the adapter
// measures them, round trips and refused upgrades:
//
//	m := promhub.New(promhub.Config{})
//	hub, _ := presence.NewHub(presence.HubConfig{Observe: m.Observe})
//	m.Hub = hub
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(m)
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
package promhub

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heartbeat-go/heartbeat/fsm"
	"github.com/heartbeat-go/heartbeat/presence"
)

// Config configures Metrics. The zero value is usable.
type Config struct {
	// Namespace prefixes every metric name. Empty means "heartbeat".
	Namespace string
	// RTTBuckets and SuspectBuckets are the histograms' bucket bounds, in
	// seconds. Nil means 1 ms … 10 s and 100 ms … 60 s.
	RTTBuckets, SuspectBuckets []float64
}

// QueueStats is what Metrics reads from a server's write queues at scrape
// time (nbiows.Server.Stats fits through a small adapter function).
type QueueStats struct {
	// Queued is the bytes waiting in all write queues; Overflows counts
	// connections closed because theirs was full.
	Queued, Overflows int64
}

// Metrics is a prometheus.Collector for one hub. Set Hub (and Queues)
// before the first scrape.
type Metrics struct {
	// Hub, if set, is read at every scrape (its Stats).
	Hub *presence.Hub
	// Queues, if set, is read at every scrape.
	Queues func() QueueStats

	conns     *prometheus.Desc
	alive     atomic.Int64
	suspectN  atomic.Int64
	verdicts  *prometheus.CounterVec
	rtt       prometheus.Histogram
	suspect   prometheus.Histogram
	redials   prometheus.Counter
	refused   *prometheus.CounterVec
	users     *prometheus.Desc
	sessions  *prometheus.Desc
	events    *prometheus.Desc
	queued    *prometheus.Desc
	overflows *prometheus.Desc
	peak      *prometheus.Desc
	sendErrs  *prometheus.Desc
	lateness  *prometheus.Desc

	mu       sync.Mutex
	suspects map[string]time.Time // connections now suspect, since when
}

// New returns the Metrics, unregistered.
func New(cfg Config) *Metrics {
	ns := cfg.Namespace
	if ns == "" {
		ns = "heartbeat"
	}
	if cfg.RTTBuckets == nil {
		cfg.RTTBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	}
	if cfg.SuspectBuckets == nil {
		cfg.SuspectBuckets = []float64{.1, .25, .5, 1, 2, 5, 10, 20, 30, 60}
	}
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, "", name), help, labels, nil)
	}
	return &Metrics{
		conns: desc("connections", "Connections watched, by heartbeat state (connecting, alive, suspect).", "state"),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "verdicts_total",
			Help: "Connections that became suspect, dead or closed, by the reason."}, []string{"verdict", "reason"}),
		rtt: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "rtt_seconds",
			Help: "Heartbeat round trips: a ping to its pong.", Buckets: cfg.RTTBuckets}),
		suspect: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "suspect_to_dead_seconds",
			Help: "How long a connection was suspect before it was found dead.", Buckets: cfg.SuspectBuckets}),
		redials: prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: "redials_total",
			Help: "Connections that became alive for a session already online (a redial within the resume window)."}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "refused_dials_total",
			Help: "Upgrade requests refused, by HTTP status."}, []string{"status"}),
		users:     desc("online_users", "Users with a session online."),
		sessions:  desc("online_sessions", "Sessions online."),
		events:    desc("presence_events_total", "Presence events emitted (the latest event's sequence number)."),
		queued:    desc("write_queue_bytes", "Bytes waiting in the connections' write queues."),
		overflows: desc("write_queue_overflows_total", "Connections closed because their write queue was full."),
		peak:      desc("hub_write_queue_peak", "The most heartbeat writes one shard has had waiting for a writer."),
		sendErrs:  desc("send_errors_total", "Heartbeat writes that failed."),
		lateness: desc("timer_lateness_seconds", "How late the hub's timer wheels fired deadlines. "+
			"The sum is not tracked (always 0): use the buckets."),
		suspects: map[string]time.Time{},
	}
}

// count returns the counter of the gauged state s, or nil.
func (m *Metrics) count(s fsm.State) *atomic.Int64 {
	switch s {
	case fsm.Alive:
		return &m.alive
	case fsm.Suspect:
		return &m.suspectN
	}
	return nil
}

// Observe is the hub's HubConfig.Observe hook.
func (m *Metrics) Observe(c presence.ConnChange) {
	if n := m.count(c.From); n != nil {
		n.Add(-1)
	}
	if n := m.count(c.To); n != nil {
		n.Add(1)
	}
	switch c.To {
	case fsm.Suspect, fsm.Dead, fsm.Closed:
		m.verdicts.WithLabelValues(c.To.String(), c.Reason.String()).Inc()
	case fsm.Alive:
		if c.Resumed {
			m.redials.Inc()
		}
	}
	if c.From == fsm.Suspect || c.To == fsm.Suspect {
		m.mu.Lock()
		since, was := m.suspects[c.Conn]
		switch {
		case c.To == fsm.Suspect:
			m.suspects[c.Conn] = c.At
		case was:
			delete(m.suspects, c.Conn)
			if c.To == fsm.Dead {
				m.suspect.Observe(c.At.Sub(since).Seconds())
			}
		}
		m.mu.Unlock()
	}
}

// ObserveRTT records one heartbeat round trip (nbiows.ServerConfig.OnRTT).
func (m *Metrics) ObserveRTT(d time.Duration) { m.rtt.Observe(d.Seconds()) }

// Refused counts an upgrade refused with an HTTP status (the nbio
// handler's OnRefused).
func (m *Metrics) Refused(status int) { m.refused.WithLabelValues(strconv.Itoa(status)).Inc() }

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.conns
	m.verdicts.Describe(ch)
	m.rtt.Describe(ch)
	m.suspect.Describe(ch)
	m.redials.Describe(ch)
	m.refused.Describe(ch)
	for _, d := range []*prometheus.Desc{m.users, m.sessions, m.events, m.queued, m.overflows, m.peak, m.sendErrs, m.lateness} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	alive, suspect := m.alive.Load(), m.suspectN.Load()
	ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(alive), fsm.Alive.String())
	ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(suspect), fsm.Suspect.String())
	m.verdicts.Collect(ch)
	m.rtt.Collect(ch)
	m.suspect.Collect(ch)
	m.redials.Collect(ch)
	m.refused.Collect(ch)
	if m.Hub != nil {
		st := m.Hub.Stats()
		// Connecting is the rest: a server-side connection is there only
		// between Watch and its bind.
		ch <- prometheus.MustNewConstMetric(m.conns, prometheus.GaugeValue, float64(max(int64(st.Conns)-alive-suspect, 0)), fsm.Connecting.String())
		ch <- prometheus.MustNewConstMetric(m.users, prometheus.GaugeValue, float64(st.Users))
		ch <- prometheus.MustNewConstMetric(m.sessions, prometheus.GaugeValue, float64(st.Sessions))
		ch <- prometheus.MustNewConstMetric(m.events, prometheus.CounterValue, float64(st.Events))
		ch <- prometheus.MustNewConstMetric(m.peak, prometheus.GaugeValue, float64(st.WriteQueuePeak))
		ch <- prometheus.MustNewConstMetric(m.sendErrs, prometheus.CounterValue, float64(st.SendErrors))
		buckets := make(map[float64]uint64, len(presence.LatenessBuckets))
		var n uint64
		for i, le := range presence.LatenessBuckets {
			n += st.Lateness[i]
			buckets[le.Seconds()] = n
		}
		n += st.Lateness[len(presence.LatenessBuckets)]
		ch <- prometheus.MustNewConstHistogram(m.lateness, n, 0, buckets)
	}
	if m.Queues != nil {
		q := m.Queues()
		ch <- prometheus.MustNewConstMetric(m.queued, prometheus.GaugeValue, float64(q.Queued))
		ch <- prometheus.MustNewConstMetric(m.overflows, prometheus.CounterValue, float64(q.Overflows))
	}
}
