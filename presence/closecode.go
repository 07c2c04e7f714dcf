package presence

import (
	"errors"

	coder "github.com/coder/websocket"
	"github.com/gorilla/websocket"
)

// normalClosure reports whether err is a WebSocket close with code 1000
// (normal closure) from the peer, as gorilla or coder report it: the client
// left on purpose.
func normalClosure(err error) bool {
	var ge *websocket.CloseError
	if errors.As(err, &ge) {
		return ge.Code == websocket.CloseNormalClosure
	}
	return coder.CloseStatus(err) == coder.StatusNormalClosure
}
