package presence

// maxClosers bounds the goroutines closing connections at once: a close
// may wait up to the adapter's close timeout for the peer's close frame,
// and a shutdown closes every connection.
const maxClosers = 256

type closeJob struct {
	s      *shard
	t      Conn
	reason error
	// onEnd, if set, runs after the close (which waits for the reader to
	// exit, so after the connection's last message).
	onEnd func(error)
}

// enqueueCloseJob queues a connection's close for the closer goroutines,
// starting one if fewer than maxClosers run. It never blocks.
func (h *Hub) enqueueCloseJob(j closeJob) {
	h.closeWG.Add(1)
	h.closeMu.Lock()
	h.closeQ = append(h.closeQ, j)
	start := h.closers < maxClosers
	if start {
		h.closers++
	}
	h.closeMu.Unlock()
	if start {
		go h.closer()
	}
}

func (h *Hub) closer() {
	for {
		h.closeMu.Lock()
		if len(h.closeQ) == 0 {
			h.closers--
			h.closeMu.Unlock()
			return
		}
		j := h.closeQ[0]
		h.closeQ[0] = closeJob{}
		h.closeQ = h.closeQ[1:]
		h.closeMu.Unlock()
		j.s.close(j.t, j.reason)
		if j.onEnd != nil {
			j.onEnd(j.reason)
		}
		h.closeWG.Done()
	}
}
