package presence

import (
	"errors"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"

	"github.com/heartbeat-go/heartbeat/transport/wire"
)

// normalClosure reports whether err is a WebSocket close with code 1000
// (normal closure) from the peer, as gorilla, coder or an adapter using
// wire.PeerCloseError (nbiows) report it: the client left on purpose.
func normalClosure(err error) bool {
	var we *wire.PeerCloseError
	if errors.As(err, &we) {
		return we.Code == wire.CloseNormal
	}
	var ge *websocket.CloseError
	if errors.As(err, &ge) {
		return ge.Code == websocket.CloseNormalClosure
	}
	return coder.CloseStatus(err) == coder.StatusNormalClosure
}
