package wire_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/heartbeat-go/heartbeat/transport/wire"
)

func Example() {
	// A server's ping to a browser, in the JSON form.
	ping := wire.Message{Type: wire.Ping, Seq: 7, SentAt: 1700000000000, ConnID: "c-42", Window: 3 * time.Second}
	b, err := wire.AppendJSON(nil, &ping)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(b))

	// The receiving side tells heartbeats from its own messages and decodes.
	if wire.IsHeartbeat(b) {
		m, _ := wire.Decode(b)
		fmt.Println(m.Type, m.Seq, m.Window)
	}

	// A message that claims more than it carries is refused, not echoed.
	_, err = wire.Decode([]byte{0xFF, 'h', 1, 1, 1, 1, 0, 60, 'a'})
	fmt.Println(errors.Is(err, wire.ErrMalformed))
	// Output:
	// {"hb":1,"t":"ping","seq":7,"ts":1700000000000,"id":"c-42","rw":3000}
	// ping 7 3s
	// true
}

func ExampleAppendControl() {
	p := wire.AppendControl(nil, 7, 1500*time.Millisecond)
	seq, window, _ := wire.ParseControl(p)
	fmt.Println(len(p), seq, window)
	// Output: 12 7 1.5s
}
