module github.com/heartbeat-go/heartbeat/transport/wire/js/browser

go 1.26.0

require (
	github.com/chromedp/cdproto v0.159.0
	github.com/chromedp/chromedp v0.23.0
	github.com/gorilla/websocket v1.5.3
	github.com/heartbeat-go/heartbeat v0.0.0
	go.uber.org/goleak v1.3.0
)

require (
	github.com/benbjohnson/clock v1.3.5 // indirect
	github.com/coder/websocket v1.8.15 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/looplab/fsm v1.0.3 // indirect
)

// The library at this commit, not a published version.
replace github.com/heartbeat-go/heartbeat => ../../../..
