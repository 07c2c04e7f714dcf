// Command gendiagram writes docs/state-machine.md from the fsm package's declaration.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/heartbeat-go/heartbeat/fsm"
)

func main() {
	out := flag.String("out", "docs/state-machine.md", "file to write")
	flag.Parse()
	if err := os.WriteFile(*out, []byte(fsm.DiagramDoc()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gendiagram:", err)
		os.Exit(1)
	}
}
