package wire_test

import (
	"slices"
	"testing"

	"github.com/heartbeat-go/heartbeat/transport/wire"
)

func TestClientOrder(t *testing.T) {
	server := wire.Subprotocols() // binary first
	for _, c := range []struct{ offered, want []string }{
		{[]string{wire.SubprotocolJSON, wire.SubprotocolBinary}, []string{wire.SubprotocolJSON, wire.SubprotocolBinary}},
		{[]string{"chat", wire.SubprotocolJSON}, []string{wire.SubprotocolJSON}},
		{[]string{wire.SubprotocolJSON, wire.SubprotocolJSON}, []string{wire.SubprotocolJSON}},
		{[]string{"chat"}, []string{}},
		{nil, []string{}},
	} {
		got := wire.ClientOrder(c.offered, server)
		if got == nil || !slices.Equal(got, c.want) {
			t.Errorf("ClientOrder(%q) = %#v, want %q", c.offered, got, c.want)
		}
	}
}
