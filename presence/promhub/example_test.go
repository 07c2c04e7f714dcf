package promhub_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/heartbeat-go/heartbeat/presence"
	"github.com/heartbeat-go/heartbeat/presence/promhub"
)

// A hub's metrics served on /metrics. (With nbiows, set
// ServerConfig.OnRTT to m.ObserveRTT and m.Queues to read its Stats.)
func Example() {
	m := promhub.New(promhub.Config{})
	hub, err := presence.NewHub(presence.HubConfig{Observe: m.Observe})
	if err != nil {
		panic(err)
	}
	defer hub.Shutdown(context.Background())
	m.Hub = hub
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	srv := httptest.NewServer(mux) // in a real server: http.ListenAndServe(":9090", mux)
	defer srv.Close()

	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.SplitSeq(string(body), "\n") {
		if strings.HasPrefix(line, "heartbeat_online_") || strings.HasPrefix(line, "heartbeat_connections{") {
			fmt.Println(line)
		}
	}
	// Output:
	// heartbeat_connections{state="alive"} 0
	// heartbeat_connections{state="connecting"} 0
	// heartbeat_connections{state="suspect"} 0
	// heartbeat_online_sessions 0
	// heartbeat_online_users 0
}
