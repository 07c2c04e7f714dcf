package fsm

import (
	"fmt"
	"strings"
)

// DiagramDoc returns the text of docs/state-machine.md: the Mermaid diagram
// of the declaration with a short legend. `go generate ./fsm` writes it; a test
// fails when the committed file differs.
func DiagramDoc() string {
	var b strings.Builder
	b.WriteString("# State machine\n\n")
	b.WriteString("<!-- Written by `go generate ./fsm` from the declaration in fsm/declaration.go; edit it, not this file. -->\n\n")
	b.WriteString("Every legal transition of a connection, drawn by looplab/fsm's Mermaid visualiser\n")
	b.WriteString("from the same declaration the Machine's transition table is compiled from.\n\n")
	b.WriteString("```mermaid\n")
	b.WriteString(Diagram())
	b.WriteString("```\n\n")
	b.WriteString("| event | from | to |\n| --- | --- | --- |\n")
	for _, ev := range declaration() {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", ev.Name, strings.Join(ev.Src, ", "), ev.Dst)
	}
	b.WriteString("\nThe client role takes `retry` and `dial_failed`; the server role takes `lost` from\n")
	b.WriteString("connecting instead, and stays in dead. A peer that closes the connection cleanly\n")
	b.WriteString("(close code 1000 or 1001, reason `peer left`) is an end, not a death: the server\n")
	b.WriteString("role takes `left` to closed, a client `redial` to reconnecting. `give_up` is taken\n")
	b.WriteString("when the backoff policy refuses another attempt.\n")
	return b.String()
}
