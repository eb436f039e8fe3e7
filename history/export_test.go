package history

// Lock and Unlock hold the history's lock, so a test can stall its goroutine.
func (h *History) Lock()   { h.mu.Lock() }
func (h *History) Unlock() { h.mu.Unlock() }

// PackedCap is the capacity of the packed steps of one set; -1 when it is not tracked.
func (h *History) PackedCap(contentID, reaction string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ct := h.contents[contentID]; ct != nil {
		for _, st := range ct.sets {
			if st.reaction.Value() == reaction {
				return cap(st.buf)
			}
		}
	}
	return -1
}
